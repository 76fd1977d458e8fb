package server_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestGetStatus checks that GetStatus answers with the backlog of the
// consumers the service reports, to keys that may read the workspace.
func TestGetStatus(t *testing.T) {
	h := newHarness(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	h.lags.Add(func() []stream.Lag {
		return []stream.Lag{
			{Name: "ingestion", Partition: 0, Cursor: 7, Head: 7, Known: true},
			{Name: "ingestion", Partition: 1, Cursor: 7, Head: 7, Known: true},
		}
	})
	h.lags.Add(func() []stream.Lag {
		return []stream.Lag{{Name: "health", Partition: 0, Cursor: 2, Head: 2, Known: true}}
	})
	for _, tc := range []struct {
		key, workspace string
		code           codes.Code
	}{
		{key: readKey},
		{key: adminKey, workspace: "ws"},
		{key: serviceKey, workspace: "ws"},
		{key: writeKey, code: codes.PermissionDenied},
		{key: readKey, workspace: "other", code: codes.PermissionDenied},
	} {
		t.Run(tc.key+"/"+tc.workspace, func(t *testing.T) {
			resp, err := h.client.GetStatus(ctxWith(tc.key), &routingv1.GetStatusRequest{Workspace: tc.workspace})
			if status.Code(err) != tc.code {
				t.Fatalf("GetStatus: %v, want %v", err, tc.code)
			}
			if err != nil {
				return
			}
			b := resp.GetBacklog()
			if b.GetLag() != 0 || !b.GetCaughtUp() || len(b.GetConsumers()) != 3 || b.GetConsumers()[2].GetSource() != "health" {
				t.Errorf("backlog = %v, want 3 partitions caught up, health's last", b)
			}
		})
	}
}
