package stream_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestAppendBatchTx appends batches mixed with single appends in one
// transaction and in the next, and reads back every record in order with
// dense offsets and the head after the last.
func TestAppendBatchTx(t *testing.T) {
	db, l := openLog(t, stream.LogOptions{Partitions: 2})
	var want [][]byte
	rec := func() []byte { d := []byte(fmt.Sprintf("r%d", len(want))); want = append(want, d); return d }
	for range 2 {
		err := db.Update(func(tx *store.Tx) error {
			if _, err := l.AppendTx(tx, 1, rec()); err != nil {
				return err
			}
			head := l.Head(1)
			batch := [][]byte{rec(), rec(), rec()}
			first, err := l.AppendBatchTx(tx, 1, batch)
			if err != nil {
				return err
			}
			if first != uint64(len(want)-2) {
				t.Errorf("first offset %d, want %d (head before the transaction %d)", first, len(want)-2, head)
			}
			if off, err := l.AppendBatchTx(tx, 1, nil); off != 0 || err != nil {
				t.Errorf("empty batch: %d, %v", off, err)
			}
			_, err = l.AppendTx(tx, 1, rec())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if h := l.Head(1); h != uint64(len(want)) {
		t.Fatalf("head %d, want %d", h, len(want))
	}
	got, err := l.Read(1, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Offset != uint64(i+1) || !bytes.Equal(r.Data, want[i]) {
			t.Fatalf("record %d: offset %d data %q, want %d %q", i, r.Offset, r.Data, i+1, want[i])
		}
	}
	err = db.Update(func(tx *store.Tx) error {
		_, err := l.AppendBatchTx(tx, 2, [][]byte{[]byte("x")})
		return err
	})
	if err == nil {
		t.Fatal("append to a missing partition succeeded")
	}
}
