package jetlog_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/jetlog"
	"github.com/cairn-dev/cairn/pkg/stream/jetlog/jettest"
)

var long = flag.Bool("jetlog.long", false, "run the long leader-loss test (more records, three leader losses)")

// TestLeaderLoss appends records with known ids the way ingestion does
// (commit to a local bbolt log, copy it to R3 streams with stream.Mirror,
// acknowledge once Wait returns) while the leader of a stream is stopped,
// its store directory wiped, and the node started again empty. Every
// stream is then read back end to end and compared with the local log:
// no acknowledged id may be missing, none may be stored twice, and the
// records must sit at the offsets the local log gave them. It reports
// the longest gap between two acknowledgements.
func TestLeaderLoss(t *testing.T) {
	const partitions, producers, batch = 4, 4, 10
	rounds, perRound := 1, 400
	if *long {
		rounds, perRound = 3, 3000
	}
	c := jettest.Start(t, 3)
	nc := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	jl, err := jetlog.Open(ctx, nc, jetlog.Options{Name: "leaderloss", Partitions: partitions, Replicas: 3, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "local.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	local, err := stream.OpenLog(db, "events", stream.LogOptions{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.NewMirror(local, jl, stream.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopMirror := context.WithCancel(ctx)
	mirrorDone := make(chan error, 1)
	go func() { mirrorDone <- m.Run(mctx) }()

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		ackTimes []time.Time
		failed   int
	)
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	pctx, stopProducers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for g := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; pctx.Err() == nil; n++ {
				p := uint32((g + n) % partitions)
				ids := make([][]byte, batch)
				for i := range ids {
					ids[i] = fmt.Appendf(nil, "g%d-b%d-%d", g, n, i)
				}
				if _, err := local.Append(pctx, p, ids...); err != nil {
					return
				}
				wctx, wcancel := context.WithTimeout(pctx, 30*time.Second)
				err := m.Wait(wctx)
				wcancel()
				mu.Lock()
				if err == nil {
					for _, id := range ids {
						acked[string(id)] = true
					}
					ackTimes = append(ackTimes, time.Now())
				} else if pctx.Err() == nil {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	waitAcked := func(n int) {
		t.Helper()
		for ackedCount() < n {
			if ctx.Err() != nil {
				t.Fatalf("only %d records acknowledged, want %d", ackedCount(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var lossAt []time.Time
	for r := range rounds {
		waitAcked((2*r + 1) * perRound)
		stream0 := jl.Stream(uint32(r % partitions))
		leader, err := c.WaitStreamLeader(stream0, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged; stopping %s, the leader of %s, wiping its store and starting it empty", r, ackedCount(), c.Nodes[leader].Name, stream0)
		lossAt = append(lossAt, time.Now())
		c.Stop(leader)
		if err := c.Wipe(leader); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(leader); err != nil {
			t.Fatal(err)
		}
		waitAcked((2*r + 2) * perRound)
	}
	stopProducers()
	wg.Wait()
	// Whatever was committed locally is copied in the end, acknowledged
	// or not.
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("final copy: %v", err)
	}
	stopMirror()
	if err := <-mirrorDone; err != nil {
		t.Fatalf("mirror: %v", err)
	}

	// Read every stream back from a fresh connection, end to end, and
	// compare it with the local log.
	reader, err := jetlog.Open(ctx, c.Connect(t), jetlog.Options{Name: "leaderloss", Partitions: partitions, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	misplaced := 0
	for p := range uint32(partitions) {
		want, err := local.Read(p, 1, int(local.Head(p)))
		if err != nil {
			t.Fatal(err)
		}
		got := serveAll(t, ctx, reader, p, local.Head(p))
		for _, r := range got {
			count[string(r.Data)]++
		}
		for i := range min(len(got), len(want)) {
			if got[i].Offset != want[i].Offset || string(got[i].Data) != string(want[i].Data) {
				misplaced++
			}
		}
		if len(got) != len(want) {
			t.Errorf("partition %d: %d records in the stream, %d in the local log", p, len(got), len(want))
		}
	}
	missing, twice := 0, 0
	for id := range acked {
		if count[id] == 0 {
			missing++
		}
	}
	for _, n := range count {
		if n > 1 {
			twice++
		}
	}
	// The audit metric counts every record the quorum holds, acknowledged
	// or read back, once.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(jl.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var audited float64
	for _, mf := range mfs {
		if mf.GetName() == "cairn_log_acked_total" {
			for _, m := range mf.GetMetric() {
				audited += m.GetCounter().GetValue()
			}
		}
	}
	stored := 0
	for _, n := range count {
		stored += n
	}
	if int(audited) != stored {
		t.Errorf("cairn_log_acked_total = %v, but the streams hold %d records", audited, stored)
	}
	slices.SortFunc(ackTimes, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(ackTimes); i++ {
		gap = max(gap, ackTimes[i].Sub(ackTimes[i-1]))
	}
	t.Logf("leader losses %d; acknowledged %d records (%d batches), %d waits timed out; stored %d (cairn_log_acked_total %v); acknowledged but missing %d; stored twice %d; misplaced %d; longest gap between acknowledgements %s",
		len(lossAt), len(acked), len(ackTimes), failed, stored, audited, missing, twice, misplaced, gap.Round(time.Millisecond))
	if missing != 0 || twice != 0 || misplaced != 0 {
		t.Errorf("acknowledged but missing %d, stored twice %d, misplaced %d; want 0", missing, twice, misplaced)
	}
	if gap > 10*time.Second {
		t.Errorf("longest gap between acknowledgements %s, want at most 10s", gap)
	}
}

// serveAll serves partition p from offset 1 until head.
func serveAll(t *testing.T, ctx context.Context, l *jetlog.Log, p uint32, head uint64) []stream.Record {
	t.Helper()
	if head == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []stream.Record
	errDone := errors.New("done")
	err := l.Serve(ctx, p, 1, func(recs []stream.Record, _ uint64) error {
		out = append(out, recs...)
		if len(out) > 0 && out[len(out)-1].Offset >= head {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("serve partition %d: %v (read %d records)", p, err, len(out))
	}
	return out
}
