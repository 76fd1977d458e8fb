package app

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// Retention removes log records older than the retention until ctx ends,
// one pass every interval (stream.Log.RunRetention); Sweep then prunes the
// index rows of the removed records.
func (a *App) Retention(ctx context.Context, interval time.Duration) error {
	if a.mirror == nil {
		return a.st.Log().RunRetention(ctx, interval)
	}
	// The replicated log applies its own limits; the local copy keeps the
	// same retention (timelines read it).
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.st.Log().RunRetention(ctx, interval) })
	g.Go(func() error { return a.served.RunRetention(ctx, interval) })
	return g.Wait()
}

// Sweep keeps storage bounded until ctx ends: in passes separated by
// SweepInterval it deletes dedup ids older than the window and, when the log
// has a retention, the index rows and pending events whose log records
// retention removed. Every transaction examines at most SweepChunk keys.
func (a *App) Sweep(ctx context.Context) error {
	for {
		if err := a.sweepPass(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.opts.Clock.After(a.opts.SweepInterval):
		}
	}
}

func (a *App) sweepPass(ctx context.Context) error {
	var after []byte
	for {
		next, _, err := a.SweepChunk(ctx, after)
		if err != nil {
			return err
		}
		if after = next; after == nil {
			break
		}
	}
	if a.opts.Retention <= 0 {
		return nil
	}
	for _, idx := range store.Indexes {
		var after []byte
		for {
			next, _, err := a.PruneChunk(ctx, idx, after)
			if err != nil {
				return err
			}
			if after = next; after == nil {
				break
			}
		}
	}
	return nil
}

// chunk is how far one transaction of a sweep got.
type chunk struct {
	next    []byte
	deleted int
}

// PruneChunk examines up to SweepChunk rows of an index after the key after
// (nil: from the start), deletes those whose log record is older than the
// log's first retained offset, and returns the key to continue from, nil
// when the pass is complete.
func (a *App) PruneChunk(ctx context.Context, idx store.Index, after []byte) (next []byte, deleted int, err error) {
	l := a.st.Log()
	first := make([]uint64, l.Partitions())
	for p := range first {
		first[p] = l.First(uint32(p))
	}
	c, err := writer(ctx, a, func(w *store.Writer) (chunk, error) {
		// The rows of every event logged so far must be in the index.
		if _, err := w.FlushStaged(0); err != nil {
			return chunk{}, err
		}
		next, deleted, err := w.Prune(idx, after, first, a.opts.SweepChunk)
		return chunk{next, deleted}, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("prune %s index: %w", idx, err)
	}
	return c.next, c.deleted, nil
}

// SweepChunk examines up to SweepChunk dedup ids after the key after (nil:
// from the start), deletes the expired ones and returns the key to continue
// from, nil when the pass is complete.
func (a *App) SweepChunk(ctx context.Context, after []byte) (next []byte, deleted int, err error) {
	cutoff := a.opts.Clock.Now().Add(-a.opts.DedupWindow)
	c, err := writer(ctx, a, func(w *store.Writer) (chunk, error) {
		next, deleted, err := w.ExpireDedup(after, cutoff, a.opts.SweepChunk)
		return chunk{next, deleted}, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sweep dedup ids: %w", err)
	}
	return c.next, c.deleted, nil
}
