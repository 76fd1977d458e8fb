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

// TestRenderOverlays renders every overlay with the kustomize Go API and
// checks it, and that the jetstream overlay wires ingestion to the NATS
// cluster it adds.
func TestRenderOverlays(t *testing.T) {
	tests := []struct {
		dir     string
		objects int
		want    []string
	}{
		{dir: "../overlays/two-replicas", objects: 19, want: []string{"value: cairn-stages-0.cairn-stages:7102,cairn-stages-1.cairn-stages:7102"}},
		{dir: "../overlays/jetstream", objects: 23, want: []string{
			"name: cairn-nats-config-", // the generated ConfigMap, hashed, and the volume naming it
			"sync_interval: always",
			"replicas: 3",
			"- name: CAIRN_LOG_BACKEND\n          value: jetstream",
			"value: nats://cairn-nats-0.cairn-nats:4222,nats://cairn-nats-1.cairn-nats:4222,nats://cairn-nats-2.cairn-nats:4222",
			"nats://cairn-nats-2.cairn-nats:6222",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			data, err := load(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			n, err := check(data)
			if err != nil {
				t.Fatalf("rendered %s: %v", tc.dir, err)
			}
			if n != tc.objects {
				t.Errorf("rendered %s has %d objects, want %d", tc.dir, n, tc.objects)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("rendered %s lacks %q", tc.dir, w)
				}
			}
		})
	}
}
