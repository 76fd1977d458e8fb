package server

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// TestRouterStatus checks that GetStatus over the replicas of stages and
// health joins every replica's backlog: consumers in replica order, lags
// added up, caught up only when all are.
func TestRouterStatus(t *testing.T) {
	lag := func(p uint32, n uint64) *commonv1.ConsumerLag {
		return &commonv1.ConsumerLag{Source: "ingestion", Partition: p, Cursor: 1, Head: 1 + n, Lag: n, HeadKnown: true}
	}
	for _, tc := range []struct {
		name     string
		accounts [][]string
		want     *commonv1.Backlog
	}{
		{
			name:     "both behind",
			accounts: [][]string{{"a", "b", "c"}, {"d", "e"}},
			want:     &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag(0, 3), lag(1, 2)}, Lag: 5},
		},
		{
			name:     "one behind",
			accounts: [][]string{{}, {"d"}},
			want:     &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag(0, 0), lag(1, 1)}, Lag: 1},
		},
		{
			name:     "all caught up",
			accounts: [][]string{{}, {}, {}},
			want:     &commonv1.Backlog{Consumers: []*commonv1.ConsumerLag{lag(0, 0), lag(1, 0), lag(2, 0)}, CaughtUp: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRouter(t, tc.accounts...)
			st, err := stagesv1.NewStagesServiceClient(r).GetStatus(t.Context(), &stagesv1.GetStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(st.GetBacklog(), tc.want) {
				t.Errorf("stages backlog = %v\nwant %v", st.GetBacklog(), tc.want)
			}
			hl, err := healthv1.NewHealthServiceClient(r).GetStatus(t.Context(), &healthv1.GetStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(hl.GetBacklog(), tc.want) {
				t.Errorf("health backlog = %v\nwant %v", hl.GetBacklog(), tc.want)
			}
		})
	}

	// A replica that cannot answer fails the call, naming it.
	r, fakes := newTestRouter(t, []string{"a"}, []string{"b"})
	fakes[1].fail = status.Error(codes.Unavailable, "down")
	_, err := stagesv1.NewStagesServiceClient(r).GetStatus(t.Context(), &stagesv1.GetStatusRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetStatus with replica 1 down = %v, want Unavailable", err)
	}
}

// TestMergeBacklogWithoutOne checks that a replica answering without a
// backlog makes the service not known to be caught up.
func TestMergeBacklogWithoutOne(t *testing.T) {
	caught := &commonv1.Backlog{CaughtUp: true}
	for _, tc := range []struct {
		name     string
		dst, src *commonv1.Backlog
	}{
		{"first replica without one", nil, caught},
		{"second replica without one", &commonv1.Backlog{CaughtUp: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mergeBacklog(tc.dst, tc.src); got.GetCaughtUp() {
				t.Errorf("merged = %v, want not caught up", got)
			}
		})
	}
}
