package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestGetStatus checks that GetStatus reports the ingestion consumer's
// partitions, applied up to what was sent, to keys that may read.
func TestGetStatus(t *testing.T) {
	r := newRig(t)
	r.send(event("acme", "u1", "demo_requested", t0, nil))
	p := stream.Partition("w", "acme", parts)
	for _, tc := range []struct {
		key, workspace string
		code           codes.Code
	}{
		{key: "reader"},
		{key: "admin", workspace: "w"},
		{key: "service", workspace: "w"},
		{key: "service", code: codes.InvalidArgument},
		{key: "other", workspace: "w", code: codes.PermissionDenied},
	} {
		t.Run(tc.key+"/"+tc.workspace, func(t *testing.T) {
			c, ctx := r.client(tc.key)
			resp, err := c.GetStatus(ctx, &stagesv1.GetStatusRequest{Workspace: tc.workspace})
			if status.Code(err) != tc.code {
				t.Fatalf("GetStatus: %v, want %v", err, tc.code)
			}
			if err != nil {
				return
			}
			b := resp.GetBacklog()
			if b.GetLag() != 0 || len(b.GetConsumers()) != parts {
				t.Fatalf("backlog = %v, want nothing behind on %d partitions", b, parts)
			}
			// The other partition may not have heard its (empty) head yet;
			// the one written to has, and is applied up to it.
			got := b.GetConsumers()[p]
			if got.GetSource() != "ingestion" || got.GetPartition() != p || got.GetCursor() != r.heads[p] ||
				got.GetHead() != r.heads[p] || !got.GetHeadKnown() {
				t.Errorf("partition %d: %v, want ingestion applied up to %d", p, got, r.heads[p])
			}
		})
	}
}
