package main

import (
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/server"
)

// TestRunRefusesReplicas checks that routing, whose owner load and
// round-robin state are workspace-wide, refuses to run as one of several
// replicas instead of assigning against half the picture.
func TestRunRefusesReplicas(t *testing.T) {
	cfg := config{Server: server.Config{Name: "routing", GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 8, Replica: 1, Replicas: 2}}
	err := run(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "-replicas: routing runs as one replica") {
		t.Fatalf("run = %v, want a -replicas configuration error", err)
	}
}
