// Package conformance is one table of tests that every pkg/stream Backend
// must pass, run against each implementation (the bbolt Log in
// pkg/stream, JetStream in pkg/stream/jetlog), the way one storage suite
// is run against every backend: offsets from 1 per partition, order,
// serving from an offset and following new appends, restarts, the
// ErrCompacted and ErrBeyondHead edges, concurrent appenders and, where a
// backend can have two writers, fencing.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// Harness opens the backend under test.
type Harness struct {
	// Open opens the log called name with the given partitions, creating
	// it on first use; opening the same name again (after Close, or while
	// open when SecondWriter) sees the same records. retention asks for a
	// log on which Compact works.
	Open func(t *testing.T, name string, partitions uint32, retention bool) stream.Backend
	// Close stops a backend Open returned, as a process stop would.
	Close func(t *testing.T, b stream.Backend)
	// Compact removes every record appended so far, as retention would
	// once they are old enough (b was opened with retention).
	Compact func(t *testing.T, b stream.Backend)
	// SecondWriter says that Open while the log is open gives a second,
	// independent writer (a second process), so fencing can be tested; a
	// bbolt file has one writer by its lock.
	SecondWriter bool
	// Fenced matches the error a deposed writer's append gets.
	Fenced error
}

// wait bounds how long a test waits for records served by a backend that
// runs in other goroutines or processes; it is a bound on a hang, not a
// deadline under test.
const wait = 30 * time.Second

// Run runs every conformance test against h.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"OffsetsPerPartition", testOffsets},
		{"AppendReadOrder", testOrder},
		{"ServeFromOffsetAndFollow", testServe},
		{"ServeCaughtUpSendsHead", testServeCaughtUp},
		{"RestartKeepsData", testRestart},
		{"BeyondHead", testBeyondHead},
		{"Compacted", testCompacted},
		{"ConcurrentAppenders", testConcurrent},
		{"NoSuchPartition", testNoPartition},
		{"Fencing", testFencing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func rec(p uint32, i int) []byte { return fmt.Appendf(nil, "p%d-r%d", p, i) }

func mustAppend(t *testing.T, b stream.Backend, p uint32, data ...[]byte) uint64 {
	t.Helper()
	first, err := b.Append(context.Background(), p, data...)
	if err != nil {
		t.Fatalf("Append(%d, %d records): %v", p, len(data), err)
	}
	return first
}

// readAll reads partition p from from to the head.
func readAll(t *testing.T, b stream.Backend, p uint32, from uint64) []stream.Record {
	t.Helper()
	var out []stream.Record
	for {
		recs, err := b.Read(p, from, 100)
		if err != nil {
			t.Fatalf("Read(%d, %d): %v", p, from, err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		from = recs[len(recs)-1].Offset + 1
	}
}

func checkDense(t *testing.T, recs []stream.Record, p uint32, from uint64, want [][]byte) {
	t.Helper()
	if len(recs) != len(want) {
		t.Fatalf("partition %d: %d records, want %d", p, len(recs), len(want))
	}
	for i, r := range recs {
		if r.Partition != p || r.Offset != from+uint64(i) || string(r.Data) != string(want[i]) {
			t.Fatalf("partition %d record %d: (%d, %d, %q), want (%d, %d, %q)", p, i, r.Partition, r.Offset, r.Data, p, from+uint64(i), want[i])
		}
	}
}

func testOffsets(t *testing.T, h Harness) {
	b := h.Open(t, "offsets", 3, false)
	want := map[uint32][][]byte{}
	for i := range 4 {
		for _, p := range []uint32{0, 2} {
			d := rec(p, i)
			if got := mustAppend(t, b, p, d); got != uint64(i+1) {
				t.Fatalf("append %d to partition %d at offset %d, want %d", i, p, got, i+1)
			}
			want[p] = append(want[p], d)
		}
	}
	for p := range uint32(3) {
		if b.Head(p) != uint64(len(want[p])) {
			t.Errorf("Head(%d) = %d, want %d", p, b.Head(p), len(want[p]))
		}
		if b.First(p) != 1 {
			t.Errorf("First(%d) = %d, want 1", p, b.First(p))
		}
		checkDense(t, readAll(t, b, p, 1), p, 1, want[p])
	}
}

func testOrder(t *testing.T, h Harness) {
	b := h.Open(t, "order", 1, false)
	var want [][]byte
	for n := 1; n <= 40; n *= 3 {
		batch := make([][]byte, n)
		for i := range batch {
			batch[i] = rec(0, len(want))
			want = append(want, batch[i])
		}
		if first := mustAppend(t, b, 0, batch...); first != uint64(len(want)-n+1) {
			t.Fatalf("batch of %d at %d, want %d", n, first, len(want)-n+1)
		}
	}
	checkDense(t, readAll(t, b, 0, 0), 0, 1, want)
	checkDense(t, readAll(t, b, 0, 5), 0, 5, want[4:])
	if recs, err := b.Read(0, 1, 3); err != nil || len(recs) != 3 {
		t.Fatalf("Read max 3 = %d records, %v", len(recs), err)
	}
}

// collector gathers what Serve sends, for a test to wait on.
type collector struct {
	mu    sync.Mutex
	recs  []stream.Record
	heads []uint64
	sends int
	more  chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) send(recs []stream.Record, head uint64) error {
	c.mu.Lock()
	c.recs = append(c.recs, recs...)
	c.heads = append(c.heads, head)
	c.sends++
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until n records arrived.
func (c *collector) waitFor(t *testing.T, n int) []stream.Record {
	t.Helper()
	timeout := time.After(wait)
	for {
		c.mu.Lock()
		got := append([]stream.Record(nil), c.recs...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.more:
		case <-timeout:
			t.Fatalf("served %d records within %s, want %d", len(got), wait, n)
		}
	}
}

func serve(t *testing.T, b stream.Backend, p uint32, from uint64, c *collector) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Serve(ctx, p, from, c.send) }()
	return func() error {
		cancel()
		err := <-errc
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

func testServe(t *testing.T, h Harness) {
	b := h.Open(t, "serve", 2, false)
	var want [][]byte
	for i := range 10 {
		want = append(want, rec(1, i))
	}
	mustAppend(t, b, 1, want...)
	c := newCollector()
	stop := serve(t, b, 1, 4, c)
	checkDense(t, c.waitFor(t, 7), 1, 4, want[3:])
	// Follow: appends after Serve started arrive without polling.
	for i := 10; i < 25; i++ {
		want = append(want, rec(1, i))
		mustAppend(t, b, 1, want[i])
	}
	checkDense(t, c.waitFor(t, 22), 1, 4, want[3:])
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if last := c.heads[len(c.heads)-1]; last != 25 {
		t.Errorf("last head sent %d, want 25", last)
	}
	for i := 1; i < len(c.heads); i++ {
		if c.heads[i] < c.heads[i-1] {
			t.Errorf("head went back from %d to %d", c.heads[i-1], c.heads[i])
		}
	}
}

func testServeCaughtUp(t *testing.T, h Harness) {
	b := h.Open(t, "caughtup", 1, false)
	mustAppend(t, b, 0, rec(0, 0), rec(0, 1))
	c := newCollector()
	stop := serve(t, b, 0, 3, c)
	timeout := time.After(wait)
	for {
		c.mu.Lock()
		sends := c.sends
		c.mu.Unlock()
		if sends > 0 {
			break
		}
		select {
		case <-c.more:
		case <-timeout:
			t.Fatal("a caught-up Serve sent nothing")
		}
	}
	c.mu.Lock()
	if len(c.recs) != 0 || c.heads[0] != 2 {
		t.Errorf("first send: %d records, head %d; want 0 records, head 2", len(c.recs), c.heads[0])
	}
	c.mu.Unlock()
	mustAppend(t, b, 0, rec(0, 2))
	checkDense(t, c.waitFor(t, 1), 0, 3, [][]byte{rec(0, 2)})
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func testRestart(t *testing.T, h Harness) {
	b := h.Open(t, "restart", 2, false)
	want := [][]byte{rec(1, 0), rec(1, 1), rec(1, 2)}
	mustAppend(t, b, 1, want...)
	h.Close(t, b)
	b = h.Open(t, "restart", 2, false)
	if b.Head(1) != 3 || b.Head(0) != 0 {
		t.Fatalf("heads after restart %d, %d; want 0, 3", b.Head(0), b.Head(1))
	}
	want = append(want, rec(1, 3))
	if first := mustAppend(t, b, 1, want[3]); first != 4 {
		t.Fatalf("append after restart at %d, want 4", first)
	}
	checkDense(t, readAll(t, b, 1, 1), 1, 1, want)
}

func testBeyondHead(t *testing.T, h Harness) {
	b := h.Open(t, "beyond", 1, false)
	mustAppend(t, b, 0, rec(0, 0), rec(0, 1))
	if _, err := b.Read(0, 4, 10); !errors.Is(err, stream.ErrBeyondHead) {
		t.Errorf("Read past head+1: %v, want ErrBeyondHead", err)
	}
	if recs, err := b.Read(0, 3, 10); err != nil || len(recs) != 0 {
		t.Errorf("Read at head+1: %d records, %v; want none, nil", len(recs), err)
	}
	err := b.Serve(context.Background(), 0, 4, func([]stream.Record, uint64) error { return errors.New("sent") })
	if !errors.Is(err, stream.ErrBeyondHead) {
		t.Errorf("Serve past head+1: %v, want ErrBeyondHead", err)
	}
}

func testCompacted(t *testing.T, h Harness) {
	b := h.Open(t, "compacted", 1, true)
	mustAppend(t, b, 0, rec(0, 0), rec(0, 1), rec(0, 2))
	h.Compact(t, b)
	if _, err := b.Read(0, 1, 10); !errors.Is(err, stream.ErrCompacted) {
		t.Errorf("Read below first: %v, want ErrCompacted", err)
	}
	err := b.Serve(context.Background(), 0, 2, func([]stream.Record, uint64) error { return errors.New("sent") })
	if !errors.Is(err, stream.ErrCompacted) {
		t.Errorf("Serve below first: %v, want ErrCompacted", err)
	}
	if f := b.First(0); f != 4 {
		t.Errorf("First after compaction %d, want 4", f)
	}
	if first := mustAppend(t, b, 0, rec(0, 3)); first != 4 {
		t.Fatalf("append after compaction at %d, want 4 (offsets are never reused)", first)
	}
	checkDense(t, readAll(t, b, 0, 0), 0, 4, [][]byte{rec(0, 3)})
}

func testConcurrent(t *testing.T, h Harness) {
	b := h.Open(t, "concurrent", 1, false)
	const writers, each = 4, 30
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i += 3 {
				d := [][]byte{fmt.Appendf(nil, "w%d-%d", w, i), fmt.Appendf(nil, "w%d-%d", w, i+1), fmt.Appendf(nil, "w%d-%d", w, i+2)}
				if _, err := b.Append(context.Background(), 0, d...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	recs := readAll(t, b, 0, 1)
	if len(recs) != writers*each {
		t.Fatalf("%d records, want %d", len(recs), writers*each)
	}
	next := map[int]int{}
	for i, r := range recs {
		if r.Offset != uint64(i+1) {
			t.Fatalf("record %d at offset %d: offsets not dense", i, r.Offset)
		}
		var w, n int
		if _, err := fmt.Sscanf(string(r.Data), "w%d-%d", &w, &n); err != nil {
			t.Fatalf("record %q: %v", r.Data, err)
		}
		if n != next[w] {
			t.Fatalf("writer %d: record %d after %d: a writer's records out of order", w, n, next[w]-1)
		}
		next[w]++
	}
}

func testNoPartition(t *testing.T, h Harness) {
	b := h.Open(t, "nopart", 2, false)
	if _, err := b.Append(context.Background(), 2, rec(2, 0)); !errors.Is(err, stream.ErrNoPartition) {
		t.Errorf("Append to partition 2 of 2: %v, want ErrNoPartition", err)
	}
	if _, err := b.Read(5, 1, 1); !errors.Is(err, stream.ErrNoPartition) {
		t.Errorf("Read partition 5 of 2: %v, want ErrNoPartition", err)
	}
}

func testFencing(t *testing.T, h Harness) {
	if !h.SecondWriter {
		t.Skip("this backend has one writer per log by construction (bbolt's file lock): nothing to fence")
	}
	old := h.Open(t, "fencing", 1, false)
	mustAppend(t, old, 0, []byte("old-1"), []byte("old-2"))
	// A new writer takes the partition over, as a new owner would.
	cur := h.Open(t, "fencing", 1, false)
	if first := mustAppend(t, cur, 0, []byte("new-3")); first != 3 {
		t.Fatalf("new writer appended at %d, want 3", first)
	}
	if _, err := old.Append(context.Background(), 0, []byte("stale")); !errors.Is(err, h.Fenced) {
		t.Fatalf("deposed writer's append: %v, want %v", err, h.Fenced)
	}
	// Fenced for good: a later append is refused too, without a round trip
	// that could land.
	if _, err := old.Append(context.Background(), 0, []byte("stale-2")); !errors.Is(err, h.Fenced) {
		t.Fatalf("deposed writer's second append: %v, want %v", err, h.Fenced)
	}
	mustAppend(t, cur, 0, []byte("new-4"))
	checkDense(t, readAll(t, cur, 0, 1), 0, 1, [][]byte{[]byte("old-1"), []byte("old-2"), []byte("new-3"), []byte("new-4")})
}
