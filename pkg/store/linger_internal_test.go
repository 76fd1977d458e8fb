package store

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestCommitLingerWaitsForCompany: lingering writes hold their group open
// (here for an hour, so only another write can end the wait) and share one
// transaction with the write that may not wait. Nothing depends on timing:
// the committer is held inside a first group while the lingering writes
// queue, and the hour never runs out.
func TestCommitLingerWaitsForCompany(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "l.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	var mu sync.Mutex
	txs := map[string]*bbolt.Tx{}
	write := func(name string) func(*Tx) error {
		return func(tx *Tx) error {
			mu.Lock()
			txs[name] = tx.Bolt()
			mu.Unlock()
			return nil
		}
	}
	waitQueued := func(n int) {
		for len(db.commits) < n {
			runtime.Gosched()
		}
	}

	hold, held := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Commit(ctx, func(*Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	errs := make(chan error, 2)
	go func() { errs <- db.CommitLinger(ctx, time.Hour, write("a")) }()
	waitQueued(1)
	go func() { errs <- db.CommitLinger(ctx, time.Hour, write("b")) }()
	waitQueued(2)
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// a and b now wait in the committer's next group (or still in the
	// queue, ahead of c); either way c's arrival ends the wait.
	if err := db.Commit(ctx, write("c")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if txs["a"] == nil || txs["a"] != txs["c"] || txs["b"] != txs["c"] {
		t.Fatal("the lingering writes did not share the transaction of the write that could not wait")
	}
}
