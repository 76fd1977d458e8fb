package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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

// SendHeader records the header a Subscribe answers with.
func (s recvStream) SendHeader(md metadata.MD) error {
	if s.header != nil {
		*s.header = md
	}
	return nil
}

// TestReplicaHeader checks that every Subscribe answers with the replica
// that serves it, and that CheckReplica tells a list out of order, too
// short, or right (and lets a server without the header pass).
func TestReplicaHeader(t *testing.T) {
	var md metadata.MD
	s := &Server{cfg: Config{Name: "ingestion", Partitions: 8, Replica: 1, Replicas: 2, ByWorkspace: true}}
	err := s.ownedPartitions(nil, recvStream{p: 4, header: &md}, &grpc.StreamServerInfo{FullMethod: "/cairn.ingestion.v1.IngestionService/Subscribe"},
		func(_ any, ss grpc.ServerStream) error { return ss.RecvMsg(&partitionReq{}) })
	if err != nil {
		t.Fatalf("Subscribe on a replica split by workspace: %v, want every partition served", err)
	}
	if got := md.Get(ReplicaHeader); len(got) != 1 || got[0] != "1/2" {
		t.Fatalf("header %v, want %s: 1/2", md, ReplicaHeader)
	}
	tests := []struct {
		name     string
		md       metadata.MD
		index, n int
		ok       bool
	}{
		{"in order", md, 1, 2, true},
		{"out of order", md, 0, 2, false},
		{"list too short", md, 0, 1, false},
		{"no header", metadata.MD{}, 0, 2, true},
	}
	for _, tc := range tests {
		err := CheckReplica(tc.md, "ingestion", tc.index, tc.n)
		if tc.ok != (err == nil) || (err != nil && status.Code(err) != codes.FailedPrecondition) {
			t.Errorf("%s: CheckReplica = %v", tc.name, err)
		}
	}
}
