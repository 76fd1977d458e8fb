package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
)

func TestBacklog(t *testing.T) {
	for _, tc := range []struct {
		name string
		lags []stream.Lag
		want *commonv1.Backlog
	}{
		{
			name: "no consumers",
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{}, CaughtUp: true},
		},
		{
			name: "caught up",
			lags: []stream.Lag{
				{Name: "ingestion", Partition: 0, Cursor: 40, Head: 40, Known: true},
				{Name: "ingestion", Partition: 1, Cursor: 0, Head: 0, Known: true},
			},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{
				{Source: "ingestion", Partition: 0, Cursor: 40, Head: 40, HeadKnown: true},
				{Source: "ingestion", Partition: 1, HeadKnown: true},
			}, CaughtUp: true},
		},
		{
			name: "behind on two upstreams, lags added up",
			lags: []stream.Lag{
				{Name: "ingestion", Partition: 0, Cursor: 10, Head: 250, Known: true},
				{Name: "ingestion-1", Partition: 0, Cursor: 5, Head: 5, Known: true},
				{Name: "stages", Partition: 3, Cursor: 7, Head: 9, Known: true},
			},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{
				{Source: "ingestion", Partition: 0, Cursor: 10, Head: 250, Lag: 240, HeadKnown: true},
				{Source: "ingestion-1", Partition: 0, Cursor: 5, Head: 5, HeadKnown: true},
				{Source: "stages", Partition: 3, Cursor: 7, Head: 9, Lag: 2, HeadKnown: true},
			}, Lag: 242},
		},
		{
			// Before the upstream answers, the head is only what was
			// applied: nothing is known to be behind, but nothing says the
			// service has caught up either.
			name: "head not heard yet",
			lags: []stream.Lag{{Name: "health", Partition: 2, Cursor: 12, Head: 12}},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{
				{Source: "health", Partition: 2, Cursor: 12, Head: 12},
			}},
		},
		{
			// A cursor past the head (never in a consumer, which moves the
			// head with the cursor) must not wrap around.
			name: "cursor past the head",
			lags: []stream.Lag{{Name: "ingestion", Partition: 1, Cursor: 9, Head: 4, Known: true}},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{
				{Source: "ingestion", Partition: 1, Cursor: 9, Head: 4, HeadKnown: true},
			}, CaughtUp: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := server.Backlog(tc.lags); !proto.Equal(got, tc.want) {
				t.Errorf("Backlog = %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestMergeBacklog(t *testing.T) {
	lag := func(src string, p uint32, behind uint64) *commonv1.ConsumerLag {
		return &commonv1.ConsumerLag{Source: src, Partition: p, Cursor: 1, Head: 1 + behind, Lag: behind, HeadKnown: true}
	}
	for _, tc := range []struct {
		name     string
		dst, src *commonv1.Backlog
		want     *commonv1.Backlog
	}{
		{
			name: "both caught up",
			dst:  &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 0, 0)}, CaughtUp: true},
			src:  &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 1, 0)}, CaughtUp: true},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 0, 0), lag("ingestion", 1, 0)}, CaughtUp: true},
		},
		{
			name: "the other replica is behind",
			dst:  &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 0, 3)}, Lag: 3},
			src:  &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 1, 5)}, Lag: 5},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 0, 3), lag("ingestion", 1, 5)}, Lag: 8},
		},
		{
			name: "caught up here, not there",
			dst:  &commonv1.Backlog{CaughtUp: true},
			src:  &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("stages", 1, 2)}, Lag: 2},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("stages", 1, 2)}, Lag: 2},
		},
		{
			name: "nothing to add",
			dst:  &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 0, 1)}, Lag: 1},
			want: &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag("ingestion", 0, 1)}, Lag: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server.MergeBacklog(tc.dst, tc.src)
			if !proto.Equal(tc.dst, tc.want) {
				t.Errorf("merged = %v\nwant %v", tc.dst, tc.want)
			}
		})
	}
}

// TestLags checks that Lags reports every consumer added, in order, and
// may be read while consumers are still being added.
func TestLags(t *testing.T) {
	var l server.Lags
	if got := l.Lag(); len(got) != 0 {
		t.Fatalf("empty Lags reports %v", got)
	}
	l.Add(func() []stream.Lag {
		return []stream.Lag{{Name: "ingestion", Partition: 0}, {Name: "ingestion", Partition: 1}}
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = l.Lag() })
	}
	l.Add(func() []stream.Lag { return []stream.Lag{{Name: "stages", Partition: 0}} })
	wg.Wait()
	got := l.Lag()
	want := []string{"ingestion/0", "ingestion/1", "stages/0"}
	if len(got) != len(want) {
		t.Fatalf("Lag() = %v, want %v", got, want)
	}
	for i, g := range got {
		if s := fmt.Sprintf("%s/%d", g.Name, g.Partition); s != want[i] {
			t.Errorf("Lag()[%d] = %s, want %s", i, s, want[i])
		}
	}
}

// TestStatus checks the GetStatus answer the services share: the backlog
// of the consumers reported, for a caller allowed on the workspace it
// names, and the usual refusal otherwise.
func TestStatus(t *testing.T) {
	behind := func() []stream.Lag {
		return []stream.Lag{{Name: "ingestion", Partition: 0, Cursor: 3, Head: 10, Known: true}}
	}
	reader := auth.NewContext(context.Background(), auth.Principal{KeyID: "k1", Workspace: "acme", Role: auth.RoleRead})
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		workspace string
		lag       func() []stream.Lag
		wantCode  codes.Code
		wantLag   uint64
		caughtUp  bool
	}{
		{name: "the key's workspace", ctx: reader, lag: behind, wantLag: 7},
		{name: "naming its own workspace", ctx: reader, workspace: "acme", lag: behind, wantLag: 7},
		{name: "no consumers", ctx: reader, caughtUp: true},
		{name: "another workspace", ctx: reader, workspace: "other", lag: behind, wantCode: codes.PermissionDenied},
		{name: "no key", ctx: context.Background(), lag: behind, wantCode: codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := server.Status(tc.ctx, tc.workspace, tc.lag)
			if code := status.Code(err); code != tc.wantCode {
				t.Fatalf("Status: %v, want code %v", err, tc.wantCode)
			}
			if err != nil {
				return
			}
			if b.GetLag() != tc.wantLag || b.GetCaughtUp() != tc.caughtUp {
				t.Errorf("Status = %v, want lag %d, caught up %v", b, tc.wantLag, tc.caughtUp)
			}
		})
	}
}
