package main

import (
	"os"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		old     string // replaced once in the rendered base
		new     string
		wantErr string
	}{
		{name: "rendered base is valid"},
		{name: "unknown field", old: "periodSeconds: 5", new: "periodSecond: 5", wantErr: `unknown field "periodSecond"`},
		{name: "wrong type", old: "replicas: 1", new: "replicas: one", wantErr: "StatefulSet"},
		{name: "probe on a missing port", old: "grpc:\n            port: 7103", new: "grpc:\n            port: 7109", wantErr: "gRPC probe port 7109"},
		{name: "non-headless service", old: "clusterIP: None", new: "clusterIP: 10.0.0.1", wantErr: "must be headless"},
		{name: "selector mismatch", old: "    matchLabels:\n      app.kubernetes.io/name: cairn-stages\n  serviceName", new: "    matchLabels:\n      app.kubernetes.io/name: cairn-nope\n  serviceName", wantErr: "does not match template labels"},
		{name: "unknown kind", old: "kind: ConfigMap", new: "kind: Pod", wantErr: `unexpected kind "Pod"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := string(base)
			if tc.old != "" {
				if !strings.Contains(doc, tc.old) {
					t.Fatalf("fixture lacks %q", tc.old)
				}
				doc = strings.Replace(doc, tc.old, tc.new, 1)
			}
			n, err := check([]byte(doc))
			if tc.wantErr == "" {
				if err != nil || n != 16 {
					t.Fatalf("check = %d, %v; want 16 objects, no error", n, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestRenderBase renders the real kustomize base with the kustomize Go API
// and checks it, so that CI validates what would be applied.
func TestRenderBase(t *testing.T) {
	data, err := load("../base")
	if err != nil {
		t.Fatal(err)
	}
	n, err := check(data)
	if err != nil {
		t.Fatalf("rendered base: %v", err)
	}
	// Five stateful services (Service, StatefulSet, PDB), the gateway
	// (Service, Deployment, PDB) and the ConfigMap.
	if n != 19 {
		t.Fatalf("rendered base has %d objects, want 19", n)
	}
	for _, want := range []string{"kind: ConfigMap", "name: cairn-config-", "image: ghcr.io/cairn-dev/cairn-ingestion:latest", "image: ghcr.io/cairn-dev/cairn-plays:latest", "app.kubernetes.io/part-of: cairn"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("rendered base lacks %q (kustomize generators, images or labels not applied)", want)
		}
	}
}

// TestLoadErrors covers the arguments that cannot be loaded.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, arg, wantErr string
	}{
		{name: "missing path", arg: "testdata/nope", wantErr: "stat testdata/nope"},
		{name: "directory without kustomization", arg: "testdata", wantErr: "render kustomization testdata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.arg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
