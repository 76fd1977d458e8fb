package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestGetStatus checks that GetStatus answers with the backlog of the
// consumers the service reports, to keys that may read.
func TestGetStatus(t *testing.T) {
	e := setup(t)
	e.lags.Add(func() []stream.Lag {
		return []stream.Lag{
			{Name: "ingestion", Partition: 0, Cursor: 90, Head: 100, Known: true},
			{Name: "ingestion", Partition: 1, Cursor: 5, Head: 5, Known: true},
		}
	})
	e.lags.Add(func() []stream.Lag {
		return []stream.Lag{{Name: "stages", Partition: 0, Cursor: 1, Head: 4, Known: true}}
	})
	for _, tc := range []struct {
		key, workspace string
		code           codes.Code
	}{
		{key: "read"},
		{key: "admin", workspace: "w"},
		{key: "svc", workspace: "w"},
		{key: "write", code: codes.PermissionDenied},
		{key: "other", workspace: "w", code: codes.PermissionDenied},
	} {
		t.Run(tc.key, func(t *testing.T) {
			resp, err := e.clients[tc.key].GetStatus(context.Background(), &healthv1.GetStatusRequest{Workspace: tc.workspace})
			if status.Code(err) != tc.code {
				t.Fatalf("GetStatus: %v, want %v", err, tc.code)
			}
			if err != nil {
				return
			}
			b := resp.GetBacklog()
			if b.GetLag() != 13 || b.GetCaughtUp() || len(b.GetConsumers()) != 3 {
				t.Errorf("backlog = %v, want 13 behind over 3 partitions, not caught up", b)
			}
			if c := b.GetConsumers()[2]; c.GetSource() != "stages" || c.GetLag() != 3 || !c.GetHeadKnown() {
				t.Errorf("stages consumer = %v", c)
			}
		})
	}
}
