package stream_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// timeOf reads "name@seconds" records; a record without "@" has no time.
func timeOf(r stream.Record) time.Time {
	_, at, ok := strings.Cut(string(r.Data), "@")
	if !ok {
		return time.Time{}
	}
	s, _ := strconv.Atoi(at)
	return time.Unix(int64(s), 0)
}

// manualHorizon is a Horizon a test moves by hand.
type manualHorizon struct {
	mu      sync.Mutex
	t       time.Time
	bounded bool
	ch      chan struct{}
}

func newManualHorizon(t time.Time, bounded bool) *manualHorizon {
	return &manualHorizon{t: t, bounded: bounded, ch: make(chan struct{})}
}

func (h *manualHorizon) Horizon() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.t, h.bounded
}

func (h *manualHorizon) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

func (h *manualHorizon) set(t time.Time, bounded bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.t, h.bounded = t, bounded
	close(h.ch)
	h.ch = make(chan struct{})
}

// TestConsumerAfterHoldsBackRecords checks ConsumerOptions.After: a record
// is applied only once the other consumer's horizon has reached its time
// (or is unbounded), records behind a held one wait with it, and records
// without a time never wait on their own.
func TestConsumerAfterHoldsBackRecords(t *testing.T) {
	_, up := openLog(t, stream.LogOptions{})
	ctx := context.Background()
	for _, s := range []string{"d@1", "d@3", "tombstone", "d@5", "d@9"} {
		if _, err := up.Append(ctx, 0, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	h := newManualHorizon(time.Time{}, true) // the other consumer knows nothing yet
	var (
		mu         sync.Mutex
		violations []string
	)
	down := storetest.Open(t)
	c, err := stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
		Name: "derived", DB: down, Source: stream.LocalSource(up, decodeString), Partitions: []uint32{0},
		Offset: func(r stream.Record) uint64 { return r.Offset },
		Apply: func(tx *store.Tx, p uint32, recs []stream.Record) error {
			limit, bounded := h.Horizon()
			for _, r := range recs {
				if at := timeOf(r); bounded && at.After(limit) {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("%s applied at horizon %d", r.Data, limit.Unix()))
					mu.Unlock()
				}
			}
			return applyRecords(tx, p, recs)
		},
		EventTime:  timeOf,
		After:      h,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()

	steps := []struct {
		name    string
		horizon int64
		bounded bool
		offset  uint64 // applied up to
		want    string
	}{
		{"up to 3: the tombstone behind d@3 goes too", 3, true, 3, "[d@1 d@3 tombstone]"},
		{"up to 4: d@5 still waits", 4, true, 3, "[d@1 d@3 tombstone]"},
		{"up to 5", 5, true, 4, "[d@1 d@3 tombstone d@5]"},
		{"caught up: no bound", 0, false, 5, "[d@1 d@3 tombstone d@5 d@9]"},
	}
	for _, st := range steps {
		h.set(time.Unix(st.horizon, 0), st.bounded)
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second) // failure guard
		if err := c.WaitFor(wctx, 0, st.offset); err != nil {
			t.Fatalf("%s: WaitFor(%d): %v", st.name, st.offset, err)
		}
		wcancel()
		if got := fmt.Sprint(applied(t, down)); got != st.want {
			t.Fatalf("%s: applied %s, want %s", st.name, got, st.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(applied(t, down)); got != "[d@1 d@3 tombstone d@5 d@9]" {
		t.Fatalf("applied %s", got)
	}
	if len(violations) > 0 {
		t.Fatalf("records applied past the horizon: %v", violations)
	}
}

// TestConsumerHorizon checks a consumer's own Horizon: bounded at zero
// before its upstream's head is known, by the watermark of the partitions
// behind while it catches up, and unbounded once caught up.
func TestConsumerHorizon(t *testing.T) {
	_, up := openLog(t, stream.LogOptions{Partitions: 2})
	ctx := context.Background()
	for _, r := range []struct {
		p uint32
		s string
	}{{0, "e@7"}, {0, "e@2"}, {1, "e@4"}} {
		if _, err := up.Append(ctx, r.p, []byte(r.s)); err != nil {
			t.Fatal(err)
		}
	}
	down := storetest.Open(t)
	c, err := stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
		Name: "events", DB: down, Source: stream.LocalSource(up, decodeString), Partitions: []uint32{0, 1},
		Offset:    func(r stream.Record) uint64 { return r.Offset },
		Apply:     applyRecords,
		EventTime: timeOf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if at, bounded := c.Horizon(); !bounded || !at.IsZero() {
		t.Fatalf("before any head is known: horizon %v bounded %v, want zero, bounded", at, bounded)
	}
	if got := stream.Limit(c, time.Unix(100, 0)); !got.IsZero() {
		t.Fatalf("Limit before any head is known = %v, want zero", got)
	}
	changed := c.Changed()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	select {
	case <-changed:
	case <-time.After(30 * time.Second): // failure guard
		t.Fatal("Changed not closed as the consumer moved")
	}
	for _, p := range []uint32{0, 1} {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second) // failure guard
		if err := c.WaitFor(wctx, p, up.Head(p)); err != nil {
			t.Fatal(err)
		}
		wcancel()
	}
	if at, bounded := c.Horizon(); bounded {
		t.Fatalf("caught up: horizon %v still bounded", at)
	}
	if got := stream.Limit(c, time.Unix(100, 0)); got != time.Unix(100, 0) {
		t.Fatalf("Limit when caught up = %v, want now", got)
	}
	// A new record on partition 1 puts it behind; its watermark (4) bounds
	// the horizon until the record is applied. (The consumer may apply it
	// before we look: then the horizon is unbounded again.)
	if _, err := up.Append(ctx, 1, []byte("e@9")); err != nil {
		t.Fatal(err)
	}
	if at, bounded := c.Horizon(); bounded && at != time.Unix(4, 0) {
		t.Fatalf("partition 1 behind: horizon %v, want its watermark 4", at.Unix())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := stream.Limit(nil, time.Unix(5, 0)); got != time.Unix(5, 0) {
		t.Fatalf("Limit(nil) = %v", got)
	}
}
