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
