package stream_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
)

func decodeString(r stream.Record) (stream.Record, error) { return r, nil }

// applied reads what a test consumer stored, in application order.
func applied(t *testing.T, db *store.DB) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx *store.Tx) error {
		b := tx.Bolt().Bucket([]byte("applied"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error { out = append(out, string(v)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func applyRecords(tx *store.Tx, _ uint32, recs []stream.Record) error {
	b, err := tx.Bolt().CreateBucketIfNotExists([]byte("applied"))
	if err != nil {
		return err
	}
	for _, r := range recs {
		seq, _ := b.NextSequence()
		if err := b.Put(store.U64(seq), r.Data); err != nil {
			return err
		}
	}
	return nil
}

func newConsumer(t *testing.T, db *store.DB, src stream.Source[stream.Record], reg prometheus.Registerer) *stream.Consumer[stream.Record] {
	t.Helper()
	c, err := stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
		Name: "up", DB: db, Source: src, Partitions: []uint32{0},
		Offset:     func(r stream.Record) uint64 { return r.Offset },
		Apply:      applyRecords,
		Registerer: reg,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConsumerExactlyOnceAcrossRestarts(t *testing.T) {
	_, up := openLog(t, stream.LogOptions{})
	down := storetest.Open(t)
	ctx := context.Background()
	var want []string
	for round := 0; round < 3; round++ {
		for i := 0; i < 10; i++ {
			s := fmt.Sprintf("r%d-%d", round, i)
			want = append(want, s)
			if _, err := up.Append(ctx, 0, []byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		// A fresh consumer per round, as after a restart: it must resume
		// from the saved cursor.
		reg := prometheus.NewRegistry()
		c := newConsumer(t, down, stream.LocalSource(up, decodeString), reg)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second) // failure guard
		if err := c.WaitFor(wctx, 0, up.Head(0)); err != nil {
			t.Fatalf("round %d: WaitFor: %v", round, err)
		}
		wcancel()
		if got := testutil.ToFloat64(c.LagGauge(0)); got != 0 {
			t.Errorf("round %d: lag gauge = %v, want 0", round, got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := applied(t, down); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("applied %v\nwant    %v", got, want)
	}

	// A restarted consumer with nothing new to apply still reports its lag.
	reg := prometheus.NewRegistry()
	c := newConsumer(t, down, stream.LocalSource(up, decodeString), reg)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second) // failure guard
	for {
		if n := testutil.CollectAndCount(reg, "cairn_consumer_lag"); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caught-up consumer never exported cairn_consumer_lag")
		}
		time.Sleep(time.Millisecond)
	}
	if got := testutil.ToFloat64(c.LagGauge(0)); got != 0 {
		t.Errorf("caught-up lag = %v, want 0", got)
	}
	cancel()
	<-done
}

// flakySource redelivers already-seen records and fails every few batches,
// as a real network connection may.
type flakySource struct {
	log   *stream.Log
	calls atomic.Int32
}

func (f *flakySource) open(ctx context.Context, p uint32, from uint64) (stream.Subscription[stream.Record], error) {
	n := f.calls.Add(1)
	if n%3 == 1 {
		return nil, errors.New("connection refused")
	}
	// Rewind by up to 3 records to simulate redelivery.
	rewind := from
	if rewind > 3 {
		rewind -= 3
	} else {
		rewind = 1
	}
	return &flakySub{log: f.log, p: p, from: rewind}, nil
}

type flakySub struct {
	log   *stream.Log
	p     uint32
	from  uint64
	count int
}

func (s *flakySub) Recv() ([]stream.Record, uint64, error) {
	s.count++
	if s.count > 2 {
		return nil, 0, errors.New("stream reset")
	}
	recs, err := s.log.Read(s.p, s.from, 4)
	if err != nil {
		return nil, 0, err
	}
	if len(recs) > 0 {
		s.from = recs[len(recs)-1].Offset + 1
	}
	return recs, s.log.Head(s.p), nil
}

func TestConsumerDropsRedeliveriesAndReconnects(t *testing.T) {
	_, up := openLog(t, stream.LogOptions{})
	var want []string
	for i := 0; i < 40; i++ {
		s := fmt.Sprintf("e%02d", i)
		want = append(want, s)
		up.Append(context.Background(), 0, []byte(s))
	}
	down := storetest.Open(t)
	src := &flakySource{log: up}
	c := newConsumer(t, down, src.open, nil)
	if l := c.Lag(); len(l) != 1 || l[0].Known || l[0].CaughtUp() {
		t.Errorf("Lag before running = %+v; want the head unknown, not caught up", l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitFor(wctx, 0, 40); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if got := applied(t, down); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("applied %v\nwant    %v", got, want)
	}
	if l := c.Lag(); len(l) != 1 || l[0].Cursor != 40 || l[0].Head != 40 || !l[0].CaughtUp() {
		t.Errorf("Lag = %+v; want caught up at 40", l)
	}
}

func TestConsumerApplyErrorDoesNotAdvance(t *testing.T) {
	_, up := openLog(t, stream.LogOptions{})
	up.Append(context.Background(), 0, []byte("good"), []byte("poison"))
	down := storetest.Open(t)
	var fails atomic.Int32
	c, err := stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
		Name: "up", DB: down, Source: stream.LocalSource(up, decodeString), Partitions: []uint32{0},
		Offset: func(r stream.Record) uint64 { return r.Offset },
		Apply: func(tx *store.Tx, p uint32, recs []stream.Record) error {
			for _, r := range recs {
				if string(r.Data) == "poison" && fails.Add(1) <= 2 {
					return errors.New("transient failure")
				}
			}
			return applyRecords(tx, p, recs)
		},
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitFor(wctx, 0, 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if got := applied(t, down); fmt.Sprint(got) != "[good poison]" {
		t.Errorf("applied %v: a failed batch must be retried whole, not skipped or doubled", got)
	}
}

func TestNewConsumerValidates(t *testing.T) {
	db := storetest.Open(t)
	src := stream.Source[stream.Record](func(context.Context, uint32, uint64) (stream.Subscription[stream.Record], error) {
		return nil, errors.New("unused")
	})
	off := func(r stream.Record) uint64 { return r.Offset }
	tests := []struct {
		name string
		opts stream.ConsumerOptions[stream.Record]
	}{
		{"no name", stream.ConsumerOptions[stream.Record]{DB: db, Source: src, Offset: off, Apply: applyRecords}},
		{"no db", stream.ConsumerOptions[stream.Record]{Name: "x", Source: src, Offset: off, Apply: applyRecords}},
		{"no source", stream.ConsumerOptions[stream.Record]{Name: "x", DB: db, Offset: off, Apply: applyRecords}},
		{"no apply", stream.ConsumerOptions[stream.Record]{Name: "x", DB: db, Source: src, Offset: off}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := stream.NewConsumer(tc.opts); err == nil {
				t.Error("want error")
			}
		})
	}
}
