package app

import (
	"context"
	"fmt"

	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// Index keeps the timeline and subject indexes up to date until ctx ends:
// every IndexInterval it moves the staged rows in transactions of at most
// IndexChunk rows. Readers do not depend on it (they flush first); it keeps
// those flushes, and the staged bucket, small. A failed pass (a full disk)
// is logged and retried after the interval, so the service keeps running.
func (a *App) Index(ctx context.Context) error {
	for {
		if err := a.indexPass(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.opts.Logger.Warn("index staged rows failed; retrying", "err", err, "retry_in", a.opts.IndexInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.opts.Clock.After(a.opts.IndexInterval):
		}
	}
}

// indexPass moves the rows staged so far (at most 10 × IndexChunk) into the
// indexes without holding the single writer for long. One big transaction
// per pass dirtied a leaf per account and per user that received events, and
// every ingest commit queued behind it waited for all of those pages to be
// written and synced (p99 ack latency of 100-300 ms at 20,000 events/s).
// Instead the pass reads the rows in a read transaction, sorts the timeline
// and the subject rows by key, and writes them in key order, IndexTxRows rows
// per write transaction: each transaction dirties the leaves of one narrow key
// range, and the acks queued behind it wait for that chunk only.
//
// The staged rows stay until every chunk is written, so a reader that flushes
// meanwhile (Timeline, DeleteSubject, PruneChunk) still finds them. Readers
// remove staged rows oldest first and staged keys are never reused (the
// store keeps the staged bucket's sequence), so once the oldest row the pass
// read is gone, a reader has flushed everything the pass still had to write
// (and may since have deleted some of it): the pass stops there. Putting a
// row that is already in its index changes nothing, so a crash between
// chunks only repeats work.
func (a *App) indexPass(ctx context.Context) error {
	snap, err := a.readStaged()
	if err != nil {
		return err
	}
	if snap.Legacy() {
		return a.flush(ctx, a.opts.IndexChunk)
	}
	return a.indexStaged(ctx, snap)
}

// readStaged reads up to 10 × IndexChunk staged rows in a read transaction.
func (a *App) readStaged() (*store.Staged, error) {
	var snap *store.Staged
	if err := a.db.View(func(tx *pkgstore.Tx) error {
		var err error
		snap, err = a.st.ReadStaged(tx, 10*a.opts.IndexChunk)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read staged index rows: %w", err)
	}
	return snap, nil
}

// indexStaged writes snap's rows into the indexes in key order, IndexTxRows
// per transaction, then removes its staged rows; it stops early when a
// reader flushed them meanwhile (see indexPass).
func (a *App) indexStaged(ctx context.Context, snap *store.Staged) error {
	if snap.Len() == 0 {
		return nil
	}
	snap.Sort()
	rows := snap.Rows()
	txRows := a.passTxRows(rows)
	for i := 0; i < rows; i += txRows {
		end := min(i+txRows, rows)
		gone, err := writer(ctx, a, func(w *store.Writer) (bool, error) { return w.IndexStaged(snap, i, end) })
		if err != nil {
			return fmt.Errorf("index staged rows: %w", err)
		}
		if gone {
			return nil
		}
	}
	// Remove the moved rows, oldest first like a reader's flush.
	for i := 0; i < snap.Len(); i += a.opts.IndexChunk {
		end := min(i+a.opts.IndexChunk, snap.Len())
		gone, err := writer(ctx, a, func(w *store.Writer) (bool, error) { return w.RemoveStaged(snap, i, end) })
		if err != nil {
			return fmt.Errorf("remove indexed staged rows: %w", err)
		}
		if gone {
			return nil
		}
	}
	return nil
}

// maxPassTxs bounds the write transactions one Index pass takes to put its
// rows (see passTxRows).
const maxPassTxs = 32

// passTxRows is how many of a pass's rows index rows one transaction puts:
// IndexTxRows, or more when the pass would take over maxPassTxs
// transactions. Each chunk shares a group commit with whatever ingest
// batches are queued, so at fixed chunks a sustained overload gave ingest
// nearly all of the writer and the staged backlog grew without bound; chunks
// that grow with the backlog let indexing keep pace, at the cost of longer
// commits only while it is behind.
func (a *App) passTxRows(rows int) int {
	return max(a.opts.IndexTxRows, (rows+maxPassTxs-1)/maxPassTxs)
}

// flush moves all staged rows into the indexes, chunk rows per transaction,
// skipping the write transaction when nothing is staged.
func (a *App) flush(ctx context.Context, chunk int) error {
	for {
		var empty bool
		if err := a.db.View(func(tx *pkgstore.Tx) error {
			empty = a.st.StagedEmpty(tx)
			return nil
		}); err != nil {
			return fmt.Errorf("check staged index rows: %w", err)
		}
		if empty {
			return nil
		}
		more, err := writer(ctx, a, func(w *store.Writer) (bool, error) { return w.FlushStaged(chunk) })
		if err != nil {
			return fmt.Errorf("index staged rows: %w", err)
		}
		if !more {
			return nil
		}
	}
}
