package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestByWorkspace checks the ownership of a replica of a service split by
// workspace: every partition, and only its own workspaces.
func TestByWorkspace(t *testing.T) {
	cfg := Config{Name: "routing", Partitions: 8, Replica: 1, Replicas: 2, ByWorkspace: true}
	if got := cfg.OwnedPartitions(); len(got) != 8 {
		t.Errorf("OwnedPartitions = %v, want all 8", got)
	}
	for p := range uint32(8) {
		if !cfg.Owns(p) {
			t.Errorf("Owns(%d) = false, want every partition", p)
		}
	}
	for _, ws := range []string{"acme", "globex", "initech", "umbrella"} {
		owner := stream.WorkspaceReplica(ws, 2)
		err := cfg.CheckWorkspace(ws)
		switch {
		case owner == 1 && err != nil:
			t.Errorf("CheckWorkspace(%s) on its owner = %v", ws, err)
		case owner == 0 && (status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "replica 0 of 2")):
			t.Errorf("CheckWorkspace(%s) on replica 1 = %v, want FailedPrecondition naming replica 0", ws, err)
		}
	}
	// Split by partition or single: every workspace is owned.
	for _, c := range []Config{{Name: "stages", Replica: 1, Replicas: 2}, {Name: "routing", ByWorkspace: true}} {
		if err := c.CheckWorkspace("acme"); err != nil {
			t.Errorf("%+v: CheckWorkspace = %v", c, err)
		}
	}
}
