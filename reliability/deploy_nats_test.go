package reliability

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"
)

// natsDeployment is one deployment's NATS cluster: its config file, the
// server names its nodes take, and the -nats-url ingestion is given.
type natsDeployment struct {
	name    string
	conf    string // relative to deploy/
	nameVar string // the environment variable server_name reads
	nodes   []string
	url     string
}

// deployedNATS reads the NATS clusters of the deployment files: the compose
// override (compose.jetstream.yaml) and the Kubernetes overlay
// (k8s/overlays/jetstream).
func deployedNATS(t *testing.T) []natsDeployment {
	t.Helper()
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join("..", "deploy", "compose.jetstream.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("parse compose.jetstream.yaml: %v", err)
	}
	cd := natsDeployment{name: "compose.jetstream.yaml", conf: "nats/nats.conf", nameVar: "NATS_SERVER_NAME", url: compose.Services["ingestion"].Environment["CAIRN_NATS_URL"]}
	for svc, s := range compose.Services {
		if n := s.Environment["NATS_SERVER_NAME"]; n != "" {
			if n != svc {
				t.Errorf("compose.jetstream.yaml: service %s names its server %s; the routes use the service names", svc, n)
			}
			if !slices.Contains(s.Volumes, "./nats/nats.conf:/etc/nats/nats.conf:ro") {
				t.Errorf("compose.jetstream.yaml: %s does not mount nats/nats.conf", svc)
			}
			cd.nodes = append(cd.nodes, n)
		}
	}
	sort.Strings(cd.nodes)

	kd := natsDeployment{name: "k8s/overlays/jetstream", conf: "k8s/overlays/jetstream/nats.conf", nameVar: "POD_NAME"}
	b, err = os.ReadFile(filepath.Join("..", "deploy", "k8s", "overlays", "jetstream", "nats.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "StatefulSet" {
			for i := range doc.Spec.Replicas {
				kd.nodes = append(kd.nodes, doc.Metadata.Name+"-"+string(rune('0'+i)))
			}
		}
	}
	for _, e := range overlayEnv(t, "cairn-ingestion") {
		if e.Name == "CAIRN_NATS_URL" {
			kd.url = e.Value
		}
	}
	return []natsDeployment{cd, kd}
}

type envVar struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// overlayEnv returns the env the jetstream overlay's patches give the
// StatefulSet called set.
func overlayEnv(t *testing.T, set string) []envVar {
	t.Helper()
	var kust struct {
		Patches []struct {
			Target struct {
				Name string `yaml:"name"`
			} `yaml:"target"`
			Patch string `yaml:"patch"`
		} `yaml:"patches"`
	}
	b, err := os.ReadFile(filepath.Join("..", "deploy", "k8s", "overlays", "jetstream", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("parse the jetstream overlay: %v", err)
	}
	var env []envVar
	for _, p := range kust.Patches {
		if p.Target.Name != set {
			continue
		}
		var patch struct {
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Env []envVar `yaml:"env"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(p.Patch), &patch); err != nil {
			t.Fatalf("parse the overlay's patch of %s: %v", set, err)
		}
		for _, c := range patch.Spec.Template.Spec.Containers {
			env = append(env, c.Env...)
		}
	}
	return env
}

// TestDeployNATS checks the NATS clusters of the deployment files offline
// with nats-server's own configuration parser: each node's file enables
// JetStream with sync_interval: always (ADR 0021), three nodes route to
// each other by the names they run under, and ingestion's -nats-url names
// every node's client port. A typo in the file, a missing sync setting or
// a route to a node that does not exist fails here, not in a cluster.
func TestDeployNATS(t *testing.T) {
	for _, d := range deployedNATS(t) {
		t.Run(d.name, func(t *testing.T) {
			if len(d.nodes) != 3 {
				t.Fatalf("%d NATS nodes (%v), want 3", len(d.nodes), d.nodes)
			}
			var wantRoutes, wantURLs []string
			for _, n := range d.nodes {
				host := n
				if d.nameVar == "POD_NAME" {
					host = n + ".cairn-nats" // the headless service's pod names
				}
				wantRoutes = append(wantRoutes, "nats://"+host+":6222")
				wantURLs = append(wantURLs, "nats://"+host+":4222")
			}
			if d.url != strings.Join(wantURLs, ",") {
				t.Errorf("ingestion's CAIRN_NATS_URL = %q, want %q", d.url, strings.Join(wantURLs, ","))
			}
			for _, n := range d.nodes {
				t.Setenv(d.nameVar, n)
				opts, err := server.ProcessConfigFile(filepath.Join("..", "deploy", d.conf))
				if err != nil {
					t.Fatalf("%s as %s: %v", d.conf, n, err)
				}
				var routes []string
				for _, r := range opts.Routes {
					routes = append(routes, r.String())
				}
				switch {
				case opts.ServerName != n:
					t.Errorf("%s: server_name %q, want %q", d.conf, opts.ServerName, n)
				case !opts.JetStream || !opts.SyncAlways:
					t.Errorf("%s: jetstream %v, sync always %v; want both (ADR 0021)", d.conf, opts.JetStream, opts.SyncAlways)
				case opts.StoreDir != "/data":
					t.Errorf("%s: store_dir %q, want /data (the volume)", d.conf, opts.StoreDir)
				case opts.Port != 4222 || opts.Cluster.Port != 6222 || opts.HTTPPort != 8222:
					t.Errorf("%s: ports %d, %d, %d; want 4222, 6222, 8222", d.conf, opts.Port, opts.Cluster.Port, opts.HTTPPort)
				case opts.Cluster.Name == "":
					t.Errorf("%s: no cluster name", d.conf)
				case !slices.Equal(routes, wantRoutes):
					t.Errorf("%s: routes %v, want %v", d.conf, routes, wantRoutes)
				case opts.LameDuckDuration <= 0:
					t.Errorf("%s: no lame_duck_duration: a stopping node would drop its leaderships abruptly", d.conf)
				}
			}
		})
	}
}

// TestDeployJetStreamEnv: every CAIRN_* variable the JetStream deployment
// files give ingestion is one cairn-ingestion reads (as TestDeployEnv does
// for the default files).
func TestDeployJetStreamEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the ingestion binary")
	}
	known := knownEnv(t, "ingestion")
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join("..", "deploy", "compose.jetstream.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	given := map[string][]string{}
	for v := range compose.Services["ingestion"].Environment {
		given["compose.jetstream.yaml"] = append(given["compose.jetstream.yaml"], v)
	}
	for _, e := range overlayEnv(t, "cairn-ingestion") {
		given["k8s/overlays/jetstream"] = append(given["k8s/overlays/jetstream"], e.Name)
	}
	for where, vars := range given {
		if !slices.Contains(vars, "CAIRN_LOG_BACKEND") {
			t.Errorf("%s does not set CAIRN_LOG_BACKEND for ingestion", where)
		}
		for _, v := range vars {
			if strings.HasPrefix(v, "CAIRN_") && !known[v] {
				t.Errorf("%s: ingestion is given %s, which cairn-ingestion does not read", where, v)
			}
		}
	}
	if len(given) != 2 {
		t.Fatalf("found ingestion's variables in %d of the 2 JetStream deployment files", len(given))
	}
}
