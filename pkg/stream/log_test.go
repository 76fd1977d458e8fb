package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
)

func openLog(t *testing.T, opts stream.LogOptions) (*store.DB, *stream.Log) {
	t.Helper()
	db := storetest.Open(t)
	l, err := stream.OpenLog(db, "test", opts)
	if err != nil {
		t.Fatal(err)
	}
	return db, l
}

func TestAppendRead(t *testing.T) {
	_, l := openLog(t, stream.LogOptions{Partitions: 2})
	ctx := context.Background()
	first, err := l.Append(ctx, 1, []byte("a"), []byte("b"), []byte("c"))
	if err != nil || first != 1 {
		t.Fatalf("Append = %d, %v; want 1, nil", first, err)
	}
	if got := l.Head(1); got != 3 {
		t.Errorf("Head(1) = %d, want 3", got)
	}
	if got := l.Head(0); got != 0 {
		t.Errorf("Head(0) = %d, want 0 (partitions are independent)", got)
	}
	tests := []struct {
		name    string
		from    uint64
		max     int
		want    []string
		wantErr error
	}{
		{name: "from zero means oldest", from: 0, want: []string{"a", "b", "c"}},
		{name: "middle", from: 2, want: []string{"b", "c"}},
		{name: "max", from: 1, max: 2, want: []string{"a", "b"}},
		{name: "head plus one is empty", from: 4, want: nil},
		{name: "beyond head", from: 5, wantErr: stream.ErrBeyondHead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := l.Read(1, tc.from, tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var got []string
			for _, r := range recs {
				got = append(got, string(r.Data))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := l.Read(9, 1, 0); !errors.Is(err, stream.ErrNoPartition) {
		t.Errorf("Read(9) err = %v, want ErrNoPartition", err)
	}
}

func TestAppendTxRollbackLeavesNoTrace(t *testing.T) {
	db, l := openLog(t, stream.LogOptions{})
	boom := errors.New("boom")
	err := db.Update(func(tx *store.Tx) error {
		if _, err := l.AppendTx(tx, 0, []byte("x")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if l.Head(0) != 0 {
		t.Errorf("head advanced to %d after rollback", l.Head(0))
	}
	off, err := l.Append(context.Background(), 0, []byte("y"))
	if err != nil || off != 1 {
		t.Errorf("Append after rollback = %d, %v; want offset 1", off, err)
	}
}

func TestDeleteLeavesGap(t *testing.T) {
	db, l := openLog(t, stream.LogOptions{})
	if _, err := l.Append(context.Background(), 0, []byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Tx) error { return l.DeleteTx(tx, 0, 2) }); err != nil {
		t.Fatal(err)
	}
	recs, err := l.Read(0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Offset != 1 || recs[1].Offset != 3 {
		t.Errorf("records after delete = %+v, want offsets 1 and 3", recs)
	}
	off, _ := l.Append(context.Background(), 0, []byte("d"))
	if off != 4 {
		t.Errorf("next offset = %d, want 4: offsets are never reused", off)
	}
}

func TestRetention(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	_, l := openLog(t, stream.LogOptions{Retention: 24 * time.Hour, Clock: clk})
	ctx := context.Background()
	l.Append(ctx, 0, []byte("old1"), []byte("old2"))
	clk.Advance(20 * time.Hour)
	l.Append(ctx, 0, []byte("new"))
	clk.Advance(5 * time.Hour) // old records are now 25h old, new one 5h
	n, err := l.ApplyRetention(ctx, 1)
	if err != nil || n != 2 {
		t.Fatalf("ApplyRetention = %d, %v; want 2", n, err)
	}
	if l.First(0) != 3 {
		t.Errorf("First = %d, want 3", l.First(0))
	}
	_, err = l.Read(0, 1, 0)
	if !errors.Is(err, stream.ErrCompacted) {
		t.Errorf("read before retention err = %v, want ErrCompacted", err)
	}
	if st := status.Convert(apierr.Status(slog.New(slog.DiscardHandler), "Read", err)); st.Code() != codes.OutOfRange {
		t.Errorf("Status code = %v, want OutOfRange", st.Code())
	}
	recs, err := l.Read(0, 0, 0)
	if err != nil || len(recs) != 1 || string(recs[0].Data) != "new" {
		t.Errorf("read from oldest = %v, %v", recs, err)
	}
}

func TestReopenKeepsOffsets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	for round := 1; round <= 3; round++ {
		db, err := store.Open(path, store.Options{NoSync: true, SchemaVersion: 1})
		if err != nil {
			t.Fatal(err)
		}
		l, err := stream.OpenLog(db, "test", stream.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		off, err := l.Append(context.Background(), 0, []byte("x"))
		if err != nil || off != uint64(round) {
			t.Errorf("round %d: offset %d, %v", round, off, err)
		}
		db.Close()
	}
}

func TestServeTailsLiveAppends(t *testing.T) {
	_, l := openLog(t, stream.LogOptions{ReadBatch: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Append(ctx, 0, []byte("0"), []byte("1"), []byte("2"), []byte("3"))
	got := make(chan stream.Record, 100)
	done := make(chan error, 1)
	go func() {
		done <- l.Serve(ctx, 0, 2, func(recs []stream.Record, head uint64) error {
			for _, r := range recs {
				got <- r
			}
			return nil
		})
	}()
	want := uint64(2)
	recv := func(n int) {
		for i := 0; i < n; i++ {
			select {
			case r := <-got:
				if r.Offset != want {
					t.Fatalf("offset %d, want %d", r.Offset, want)
				}
				want++
			case <-time.After(10 * time.Second): // failure guard only
				t.Fatalf("no record %d", want)
			}
		}
	}
	recv(3) // catch-up: offsets 2..4
	for i := 0; i < 5; i++ {
		l.Append(ctx, 0, []byte("live"))
	}
	recv(5) // live tail without polling
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve returned %v, want context.Canceled", err)
	}
}

func TestServeErrors(t *testing.T) {
	_, l := openLog(t, stream.LogOptions{})
	l.Append(context.Background(), 0, []byte("a"))
	err := l.Serve(context.Background(), 0, 10, func([]stream.Record, uint64) error { return nil })
	if !errors.Is(err, stream.ErrBeyondHead) {
		t.Errorf("Serve beyond head = %v, want ErrBeyondHead", err)
	}
	sendErr := errors.New("client gone")
	err = l.Serve(context.Background(), 0, 1, func([]stream.Record, uint64) error { return sendErr })
	if !errors.Is(err, sendErr) {
		t.Errorf("Serve with failing send = %v, want %v", err, sendErr)
	}
}

func TestConcurrentAppendsAreOrderedAndDense(t *testing.T) {
	_, l := openLog(t, stream.LogOptions{})
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.Append(context.Background(), 0, []byte(fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	recs, err := l.Read(0, 1, writers*each+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != writers*each {
		t.Fatalf("%d records, want %d", len(recs), writers*each)
	}
	for i, r := range recs {
		if r.Offset != uint64(i+1) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
	}
}

func TestPartitionIsStable(t *testing.T) {
	tests := []struct {
		ws, acct string
		n        uint32
	}{{"demo", "acme", 8}, {"demo", "globex", 64}, {"other", "acme", 8}, {"x", "", 1}}
	for _, tc := range tests {
		a := stream.Partition(tc.ws, tc.acct, tc.n)
		b := stream.Partition(tc.ws, tc.acct, tc.n)
		if a != b || a >= max(tc.n, 1) {
			t.Errorf("Partition(%q,%q,%d) = %d, %d", tc.ws, tc.acct, tc.n, a, b)
		}
	}
	if stream.Partition("a", "bc", 1<<20) == stream.Partition("ab", "c", 1<<20) {
		t.Error("workspace/account boundary is ambiguous")
	}
}

// BenchmarkAppend measures durable appends/s with group commit against one
// fsync per append. Run: go test -run '^$' -bench Append -benchtime 3s ./pkg/stream
func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 300)
	for _, mode := range []string{"group", "fsync-each"} {
		for _, conc := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", mode, conc*runtime.GOMAXPROCS(0)), func(b *testing.B) {
				db, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{SchemaVersion: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				l, _ := stream.OpenLog(db, "bench", stream.LogOptions{})
				b.SetParallelism(conc)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						var err error
						if mode == "group" {
							_, err = l.Append(context.Background(), 0, payload)
						} else {
							err = db.Update(func(tx *store.Tx) error { _, err := l.AppendTx(tx, 0, payload); return err })
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}

// TestSubscriberLag follows one Serve batch by batch: the lag is what the
// subscription has not been sent yet, and a finished Serve no longer counts.
func TestSubscriberLag(t *testing.T) {
	_, l := openLog(t, stream.LogOptions{Partitions: 2, ReadBatch: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, 1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.SubscriberLag(); got != 0 {
		t.Fatalf("lag with no subscription = %d, want 0", got)
	}
	sending := make(chan int, 1)
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.Serve(ctx, 1, 0, func(recs []stream.Record, _ uint64) error {
			if len(recs) == 0 {
				return nil
			}
			sending <- len(recs)
			<-release
			return nil
		})
	}()
	wait := func() int {
		select {
		case n := <-sending:
			return n
		case <-time.After(10 * time.Second): // failure guard only
			t.Fatal("no batch sent")
			return 0
		}
	}
	tests := []struct {
		name    string
		append  int // records appended while the previous batch is in flight
		wantLen int
		wantLag uint64
	}{
		{name: "first batch handed over", wantLen: 4, wantLag: 6},
		{name: "second batch", wantLen: 4, wantLag: 2},
		{name: "last batch", wantLen: 2, wantLag: 0},
		{name: "three appended while it is in flight", append: 3, wantLen: 3, wantLag: 0},
	}
	for i, tc := range tests {
		for j := 0; j < tc.append; j++ {
			if _, err := l.Append(ctx, 1, []byte("new")); err != nil {
				t.Fatal(err)
			}
		}
		if tc.append > 0 {
			if got := l.SubscriberLag(); got != uint64(tc.append) {
				t.Errorf("%s: lag before the next batch = %d, want %d", tc.name, got, tc.append)
			}
		}
		if i > 0 {
			release <- struct{}{}
		}
		if n := wait(); n != tc.wantLen {
			t.Fatalf("%s: sent %d records, want %d", tc.name, n, tc.wantLen)
		}
		if got := l.SubscriberLag(); got != tc.wantLag {
			t.Errorf("%s: lag = %d, want %d", tc.name, got, tc.wantLag)
		}
	}
	cancel()
	release <- struct{}{}
	<-done
	if got := l.SubscriberLag(); got != 0 {
		t.Errorf("lag after Serve returned = %d, want 0", got)
	}
}
