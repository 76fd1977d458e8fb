package reliability

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// deployedStateful are the stateful services the deployment files run: the
// ones the suites start (services) and plays, which the deployment files
// carry although the crash suites do not start it.
var deployedStateful = append(append([]string{}, services...), "plays")

// binary returns the path of cairn-<name> in binDir, building it first
// when TestMain did not (TestMain builds what the suites start).
func binary(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(binDir, "cairn-"+name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	out, err := exec.Command("go", "build", "-o", path, "github.com/cairn-dev/cairn/services/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("go build cairn-%s: %v\n%s", name, err, out)
	}
	return path
}

// flagLine matches a flag in the standard flag package's -h output.
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// knownEnv returns the CAIRN_* variables a binary reads: one per flag
// (CAIRN_<FLAG_UPPER_SNAKE>, the convention of pkg/server and the gateway)
// plus CAIRN_LOG_LEVEL, which pkg/telemetry reads.
func knownEnv(t *testing.T, name string) map[string]bool {
	t.Helper()
	// -h exits non-zero with the usage on stderr; only the text matters.
	out, _ := exec.Command(binary(t, name), "-h").CombinedOutput()
	env := map[string]bool{"CAIRN_LOG_LEVEL": true}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		env["CAIRN_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if len(env) < 3 {
		t.Fatalf("cairn-%s -h lists no flags:\n%s", name, out)
	}
	return env
}

// TestDeployEnv checks the deployment files against the real binaries:
// every CAIRN_* variable that the Kubernetes base or the compose file gives
// a process must be one that process reads. A typo, or a secret handed to a
// process that does not need it, fails here instead of in a cluster.
func TestDeployEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the service binaries")
	}
	names := append(append([]string{}, deployedStateful...), "gateway")
	known := map[string]map[string]bool{}
	for _, n := range names {
		known[n] = knownEnv(t, n)
	}
	given := map[string]map[string]bool{} // "<file> <process>" -> variables
	add := func(where, process, v string) {
		if !strings.HasPrefix(v, "CAIRN_") {
			return
		}
		k := where + " " + process
		if given[k] == nil {
			given[k] = map[string]bool{}
		}
		given[k][v] = true
	}

	// Kubernetes: each workload's explicit env, and the shared ConfigMap
	// that the stateful services load with envFrom.
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "deploy", "k8s", "base", n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc struct {
				Kind string `yaml:"kind"`
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Env []struct {
									Name string `yaml:"name"`
								} `yaml:"env"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			if err := dec.Decode(&doc); err != nil {
				break
			}
			for _, c := range doc.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					add("k8s/base/"+n+".yaml", n, e.Name)
				}
			}
		}
	}
	var kust struct {
		ConfigMapGenerator []struct {
			Literals []string `yaml:"literals"`
		} `yaml:"configMapGenerator"`
	}
	b, err := os.ReadFile(filepath.Join("..", "deploy", "k8s", "base", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("parse kustomization.yaml: %v", err)
	}
	for _, g := range kust.ConfigMapGenerator {
		for _, l := range g.Literals {
			for _, n := range deployedStateful {
				add("k8s/base/kustomization.yaml", n, strings.SplitN(l, "=", 2)[0])
			}
		}
	}

	// Compose: each service's environment after YAML merge keys.
	var compose struct {
		Services map[string]struct {
			Build struct {
				Args map[string]string `yaml:"args"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	b, err = os.ReadFile(filepath.Join("..", "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("parse compose.yaml: %v", err)
	}
	seen := 0
	for _, svc := range compose.Services {
		n := svc.Build.Args["SERVICE"]
		if known[n] == nil {
			continue // the CLI image, collector, Prometheus, Grafana
		}
		seen++
		for v := range svc.Environment {
			add("compose.yaml", n, v)
		}
	}
	if seen != len(names) {
		t.Errorf("compose.yaml builds %d of the %d Cairn processes", seen, len(names))
	}

	keys := make([]string, 0, len(given))
	for k := range given {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		process := k[strings.LastIndexByte(k, ' ')+1:]
		for v := range given[k] {
			if !known[process][v] {
				t.Errorf("%s: %s sets %s, which cairn-%s does not read", k[:strings.LastIndexByte(k, ' ')], process, v, process)
			}
		}
	}
	if len(keys) < 2*len(names) {
		t.Fatalf("found variables for only %d file/process pairs: the parse missed the deployment files", len(keys))
	}
}
