package app

import (
	"context"
	"fmt"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// TimelineQuery selects events of one account (see store.TimelineQuery).
type TimelineQuery = store.TimelineQuery

// Timeline returns an account's events newest first, including every event
// acknowledged before the call. next is the key to pass as After for the
// following page, nil when there are no more.
func (a *App) Timeline(ctx context.Context, q TimelineQuery) (events []*ingestionv1.Event, next []byte, err error) {
	// Every event acknowledged before the call is in the index once staged
	// rows are flushed.
	if err := a.flush(ctx, a.opts.IndexChunk); err != nil {
		return nil, nil, fmt.Errorf("scan timeline of %q: %w", q.Account, err)
	}
	var hits []store.Position
	if err := a.db.View(func(tx *pkgstore.Tx) error {
		var err error
		hits, next, err = a.st.Timeline(tx, q)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("scan timeline of %q: %w", q.Account, err)
	}
	for _, h := range hits {
		ev, err := a.st.ReadEvent(h.Partition, h.Offset)
		if err != nil {
			return nil, nil, err
		}
		if ev != nil {
			events = append(events, ev)
		}
	}
	return events, next, nil
}

// Subscribe serves partition p of the event log from offset from until ctx
// ends or send fails: send gets the records read, decoded and with their
// positions, and the partition's head. Errors are the log's
// (stream.ErrCompacted, stream.ErrBeyondHead) or send's.
func (a *App) Subscribe(ctx context.Context, p uint32, from uint64, send func(recs []*ingestionv1.LogRecord, head uint64) error) error {
	return a.st.Log().Serve(ctx, p, from, func(recs []stream.Record, head uint64) error {
		out := make([]*ingestionv1.LogRecord, 0, len(recs))
		for _, r := range recs {
			rec, err := store.Decode(r)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return send(out, head)
	})
}
