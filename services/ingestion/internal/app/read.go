package app

import (
	"context"
	"errors"
	"fmt"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store/wire"
)

// TimelineQuery selects events of one account (see store.TimelineQuery).
type TimelineQuery = store.TimelineQuery

// Timeline returns an account's events newest first, including every event
// acknowledged before the call. next is the key to pass as After for the
// following page, nil when there are no more.
func (a *App) Timeline(ctx context.Context, q TimelineQuery) (events []*ingestionv1.Event, next []byte, err error) {
	// Every event acknowledged before the call is in the index once staged
	// rows are flushed. On a full disk the flush cannot be written: the
	// read then serves the index as it stands (without the events acked
	// since its last pass) rather than failing, since reads must keep
	// working while the disk is full.
	if err := a.flush(ctx, a.opts.IndexChunk); err != nil {
		var we *pkgstore.WriteError
		if !errors.As(err, &we) {
			return nil, nil, fmt.Errorf("scan timeline of %q: %w", q.Account, err)
		}
		a.opts.Logger.Warn("timeline read without the newest events: the index pass cannot be written", "account", q.Account, "err", err)
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

// SubscribeEncoded serves partition p of the event log from offset from
// until ctx ends or send fails. Each send gets a SubscribeResponse in wire
// form, built from the stored bytes without decoding them: the records read,
// with their positions, and the partition's head. Errors are the log's
// (stream.ErrCompacted, stream.ErrBeyondHead) or send's.
func (a *App) SubscribeEncoded(ctx context.Context, p uint32, from uint64, send func(msg []byte) error) error {
	return a.served.Serve(ctx, p, from, func(recs []stream.Record, head uint64) error {
		// A fresh buffer each time: gRPC may still be writing the
		// previous one when send returns.
		n := 16
		for _, r := range recs {
			n += len(r.Data) + 24
		}
		buf := make([]byte, 0, n)
		for _, r := range recs {
			buf = wire.AppendSubscribed(buf, r.Data, r.Offset, r.Partition)
		}
		buf = wire.AppendSubscribeHead(buf, head)
		return send(buf)
	})
}
