package app

import (
	"context"
	"fmt"
	"time"

	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// purgeChunk bounds the positions one purge transaction dequeues.
const purgeChunk = 1000

// Replicate copies the event log to the replicated backend (Options.Log)
// until ctx ends, and deletes from it what DeleteSubject deleted locally
// before a crash let it do so (the purge queue). Without a backend it
// just waits.
func (a *App) Replicate(ctx context.Context) error {
	if a.mirror == nil {
		<-ctx.Done()
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- a.mirror.Run(ctx) }()
	for {
		if err := a.purge(ctx); err != nil && ctx.Err() == nil {
			a.opts.Logger.Warn("deleting forgotten records from the replicated log failed; retrying", "err", err)
		}
		select {
		case err := <-errc:
			return err
		case <-a.opts.Clock.After(time.Minute):
		}
	}
}

// replicated waits until the replicated backend holds everything committed
// so far (stream.Mirror.Wait): a no-op with the log in ingestion.db.
func (a *App) replicated(ctx context.Context) error {
	if a.mirror == nil {
		return nil
	}
	return a.mirror.Wait(ctx)
}

// deleter is a replicated backend that deletes single records.
type deleter interface {
	Delete(ctx context.Context, p uint32, off uint64) error
}

// purge deletes the queued positions from the replicated backend and then
// from the queue.
func (a *App) purge(ctx context.Context) error {
	d, ok := a.served.(deleter)
	if a.mirror == nil || !ok {
		return nil
	}
	for {
		var ps []store.Position
		if err := a.db.View(func(tx *pkgstore.Tx) error {
			var err error
			ps, err = a.st.Purges(tx, purgeChunk)
			return err
		}); err != nil {
			return fmt.Errorf("read purge queue: %w", err)
		}
		if len(ps) == 0 {
			return nil
		}
		for _, p := range ps {
			if err := d.Delete(ctx, p.Partition, p.Offset); err != nil {
				return err
			}
		}
		if _, err := writer(ctx, a, func(w *store.Writer) (struct{}, error) { return struct{}{}, w.Purged(ps) }); err != nil {
			return fmt.Errorf("dequeue purged records: %w", err)
		}
	}
}
