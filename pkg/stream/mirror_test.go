package stream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestMirror copies a local log into another backend (here another bbolt
// log, standing in for a replicated one): records land at the local
// offsets, a record deleted before it was copied becomes an empty record,
// Wait returns once everything committed before it is copied, and a
// destination ahead of the local log is refused.
func TestMirror(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcDB, src := openLog(t, stream.LogOptions{Partitions: 2})
	_, dst := openLog(t, stream.LogOptions{Partitions: 2})
	if _, err := src.Append(ctx, 1, []byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	// Deleted before the mirror ran: its offset must stay taken.
	if err := srcDB.Update(func(tx *store.Tx) error { return src.DeleteTx(tx, 1, 2) }); err != nil {
		t.Fatal(err)
	}
	m, err := stream.NewMirror(src, dst, stream.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	if _, err := src.Append(ctx, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := m.Wait(wctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if _, err := src.Append(ctx, 1, []byte("d")); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(wctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	want := map[uint32][]string{0: {"x"}, 1: {"a", "", "c", "d"}}
	for p, w := range want {
		got, err := dst.Read(p, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(w) {
			t.Fatalf("partition %d: %d records copied, want %d", p, len(got), len(w))
		}
		for i, r := range got {
			if r.Offset != uint64(i+1) || string(r.Data) != w[i] {
				t.Errorf("partition %d record %d: (%d, %q), want (%d, %q)", p, i, r.Offset, r.Data, i+1, w[i])
			}
		}
		if m.Acked(p) != uint64(len(w)) {
			t.Errorf("Acked(%d) = %d, want %d", p, m.Acked(p), len(w))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// A destination ahead of the local log (the local file was replaced)
	// is refused rather than written at reused offsets.
	_, fresh := openLog(t, stream.LogOptions{Partitions: 2})
	if _, err := stream.NewMirror(fresh, dst, stream.MirrorOptions{}); !errors.Is(err, stream.ErrDiverged) {
		t.Fatalf("NewMirror onto a destination ahead: %v, want ErrDiverged", err)
	}
	// Wait gives up as Unavailable when the copy does not happen in time.
	_, behind := openLog(t, stream.LogOptions{Partitions: 2})
	m2, err := stream.NewMirror(fresh, behind, stream.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Append(context.Background(), 0, []byte("y")); err != nil {
		t.Fatal(err)
	}
	expired, ecancel := context.WithCancel(context.Background())
	ecancel()
	if err := m2.Wait(expired); err == nil {
		t.Fatal("Wait with nothing copying returned nil")
	}
}
