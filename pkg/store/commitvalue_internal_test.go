package store

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
)

// TestCommitValueIsTheCommittedRun forces a group in which one member
// fails, so that the other member's function runs twice, and checks that
// CommitValue returns what the second, committed run computed.
func TestCommitValueIsTheCommittedRun(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "c.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// Hold the committer inside a first group while the next one queues.
	hold, held := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Commit(ctx, func(*Tx) error { close(held); <-hold; return nil })
	}()
	<-held

	runs := 0
	type result struct {
		v   int
		err error
	}
	counted := make(chan result, 1)
	go func() {
		v, err := CommitValue(ctx, db, func(tx *Tx) (int, error) {
			runs++
			b, err := tx.Bucket("runs")
			if err != nil {
				return 0, err
			}
			return runs, b.Put([]byte("last"), U64(uint64(runs)))
		})
		counted <- result{v, err}
	}()
	for len(db.commits) < 1 {
		runtime.Gosched()
	}
	boom := errors.New("boom")
	failed := make(chan error, 1)
	go func() { failed <- db.Commit(ctx, func(*Tx) error { return boom }) }()
	for len(db.commits) < 2 {
		runtime.Gosched()
	}
	close(hold)

	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-failed; !errors.Is(err, boom) {
		t.Fatalf("failing member: %v, want boom", err)
	}
	got := <-counted
	if got.err != nil {
		t.Fatal(got.err)
	}
	if runs != 2 {
		t.Fatalf("the member ran %d times, want 2 (the group was not retried)", runs)
	}
	var stored uint64
	_ = db.View(func(tx *Tx) error {
		b, _ := tx.Bucket("runs")
		stored = ParseU64(b.Get([]byte("last")))
		return nil
	})
	if got.v != 2 || stored != 2 {
		t.Fatalf("CommitValue = %d, stored %d; want the committed run's 2", got.v, stored)
	}
}
