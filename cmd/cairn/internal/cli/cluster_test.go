package cli

import (
	"strconv"
	"strings"
	"testing"
)

// TestClusterPorts: --cluster adds the NATS nodes on base+21 .. base+29,
// apart from every port the suite already uses, with and without
// --base-port, and only ingestion's command line changes.
func TestClusterPorts(t *testing.T) {
	tests := []struct {
		name string
		rc   runConfig
		want string // -nats-url
	}{
		{name: "default ports", rc: runConfig{basePort: 7100, metricsBase: 9100, httpAddr: "127.0.0.1:8080"},
			want: "nats://127.0.0.1:7121,nats://127.0.0.1:7122,nats://127.0.0.1:7123"},
		{name: "--base-port", rc: runConfig{basePort: 23000, metricsBase: 23010, httpAddr: "127.0.0.1:23020"},
			want: "nats://127.0.0.1:23021,nats://127.0.0.1:23022,nats://127.0.0.1:23023"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := tc.rc
			rc.bin, rc.partitions, rc.self = "/b", 8, "/b/cairn"
			plain := rc.ports()
			rc.cluster = true
			p := rc.ports()
			if got := p.natsURL(); got != tc.want {
				t.Fatalf("nats url %s, want %s", got, tc.want)
			}
			used := map[string]string{p.http: "gateway http"}
			for s, a := range p.grpc {
				used[a] = s + " grpc"
			}
			for s, a := range p.metrics {
				used[a] = s + " metrics"
			}
			for i, n := range p.nats {
				for _, port := range []int{n.client, n.route, n.monitor} {
					a := "127.0.0.1:" + strconv.Itoa(port)
					if who, ok := used[a]; ok {
						t.Errorf("node %d's port %s is also %s", i, a, who)
					}
					used[a] = "nats"
				}
			}
			for _, s := range suiteServices {
				a := strings.Join(processFor(s, &rc, plain, "/d", "/d/keys.json", "sk").Args, " ")
				b := strings.Join(processFor(s, &rc, p, "/d", "/d/keys.json", "sk").Args, " ")
				switch {
				case s == "ingestion" && b != a+" -log-backend jetstream -nats-url "+tc.want:
					t.Errorf("ingestion with --cluster: %s", b)
				case s != "ingestion" && a != b:
					t.Errorf("%s's command line changed with --cluster: %s", s, b)
				}
			}
			n1 := natsProcess(1, &rc, p, "/d")
			wantArgs := "nats-node --name n1 --cluster cairn-local --port " + strconv.Itoa(p.nats[1].client) + " --cluster-port " + strconv.Itoa(p.nats[1].route) +
				" --monitor-port " + strconv.Itoa(p.nats[1].monitor) + " --routes nats://127.0.0.1:" + strconv.Itoa(p.nats[0].route) + ",nats://127.0.0.1:" + strconv.Itoa(p.nats[1].route) +
				",nats://127.0.0.1:" + strconv.Itoa(p.nats[2].route) + " --store /d/nats/n1"
			if got := strings.Join(n1.Args, " "); got != wantArgs || n1.Path != "/b/cairn" || n1.Name != "nats-n1" || !strings.HasSuffix(n1.ReadyURL, strconv.Itoa(p.nats[1].monitor)+"/healthz") {
				t.Errorf("node 1: %s %s (ready %s)\nwant args %s", n1.Path, got, n1.ReadyURL, wantArgs)
			}
		})
	}
}

// TestRunClusterPortRange: the last NATS port must fit under 65536.
func TestRunClusterPortRange(t *testing.T) {
	out := &lockedBuf{}
	code := Main(t.Context(), []string{"run", "--base-port", "65510", "--cluster"}, &Env{Stdout: out, Stderr: out})
	if code != 2 || !strings.Contains(out.String(), "ports out of range") {
		t.Errorf("cairn run --base-port 65510 --cluster = %d, %q; want 2, ports out of range", code, out)
	}
}
