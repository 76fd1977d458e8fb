// Package app holds the ingestion service's use cases: ingesting a batch
// (dedup, attribution, logging), the in-flight admission in front of it,
// timeline reads, subject deletion, serving the log, and the background
// loops that index staged rows, sweep dedup ids and apply retention. It
// owns the transactions: each use case opens them on the bbolt file
// (pkg/store) and calls the store's typed functions inside, deciding with
// the identity package whom events belong to. Every batch is written in one
// group-committed transaction, so an event is acknowledged only when it,
// its dedup id and its index rows are durable together.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// Options configure an App.
type Options struct {
	// Partitions is the number of log partitions.
	Partitions uint32
	// Retention removes log records older than this; 0 keeps them forever.
	Retention time.Duration
	// DedupWindow is how long a message id is remembered.
	DedupWindow time.Duration
	// Clock tells the time for dedup expiry, sweeping and the loops.
	Clock clock.Clock
	// NoGroupCommit writes each batch in its own transaction (one fsync per
	// batch) instead of sharing commits; only for comparing in benchmarks.
	NoGroupCommit bool
	// SweepChunk bounds how many dedup ids one sweep transaction examines,
	// so that sweeping never holds the write lock for long (default 5000).
	SweepChunk int
	// SweepInterval is the pause between full sweeps (default 1 minute).
	SweepInterval time.Duration
	// DeleteChunk bounds how many events one DeleteSubject transaction
	// removes (default 5000); a larger subject takes several transactions and
	// the tombstone is logged with the last one.
	DeleteChunk int
	// ServeLinger is stream.LogOptions.ServeLinger for the event log (0:
	// none): a caught-up Subscribe waits this long after an append before
	// sending, so that a trickle of small commits reaches the consumers as
	// one send (and one transaction in each) instead of many.
	ServeLinger time.Duration
	// IndexInterval is the pause between Index passes (default 1s). Longer
	// passes index more events per leaf page they dirty; since a pass is
	// written in small transactions (IndexTxRows), acks do not wait for it.
	IndexInterval time.Duration
	// IndexChunk bounds the staged index rows one Index transaction moves
	// (default 20000), so that indexing never holds the write lock for long.
	IndexChunk int
	// IndexTxRows bounds the index rows one write transaction of an Index
	// pass puts (default 1000), so that the ingest commits queued behind it
	// wait for a bounded number of dirty pages (see indexPass).
	IndexTxRows int
	// MaxInflightBytes bounds the protobuf bytes of batches being processed
	// at once; beyond it callers get ResourceExhausted with a retry delay
	// sized from the backlog instead of queueing without limit (default 64
	// MiB).
	MaxInflightBytes int64
	// MaxInflightBytesPerKey bounds them for one API key, so that one
	// caller cannot take the whole budget (default: half of
	// MaxInflightBytes).
	MaxInflightBytesPerKey int64
	// AdmitWait is the longest a batch waits for room in the budget before
	// it is refused (default 100ms; pkg/admit).
	AdmitWait time.Duration
	// AdmitTarget, when set, is the mean time a batch may take while
	// batches are refused or wait; above it the budget is lowered
	// (pkg/admit Limits.Target).
	AdmitTarget time.Duration
	// LagBudget, when set, is how many records the furthest-behind
	// subscriber (a downstream consumer) may have left to receive before
	// Ingest refuses new events with ResourceExhausted: past it the
	// consumers are not keeping up, and acking more would only grow the
	// time until the suite's numbers are current again.
	LagBudget uint64
	// LagRetry is the retry delay sent with such a refusal (default 1s).
	LagRetry time.Duration
	// Log, when set, is the replicated backend the event log is served
	// from (pkg/stream/jetlog): every batch is committed to ingestion.db as
	// before, then copied to it (stream.Mirror), and acknowledged only once
	// it holds the batch. Nil serves the log in ingestion.db.
	Log stream.Backend
	// Logger receives Index's failures, which it retries rather than
	// stopping the service over (default slog.Default()).
	Logger *slog.Logger
}

// App is the ingestion service's use cases over one store.
type App struct {
	db   *pkgstore.DB
	st   *store.Store
	opts Options
	// served is the log Subscribe serves: the local one, or opts.Log,
	// which mirror fills from the local one.
	served  stream.Backend
	mirror  *stream.Mirror
	batches *admit.Controller
	lagShed atomic.Uint64
}

// New opens the store in db and returns the app.
func New(db *pkgstore.DB, opts Options) (*App, error) {
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.SweepChunk <= 0 {
		opts.SweepChunk = 5000
	}
	if opts.LagRetry <= 0 {
		opts.LagRetry = time.Second
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.DeleteChunk <= 0 {
		opts.DeleteChunk = 5000
	}
	if opts.IndexInterval <= 0 {
		opts.IndexInterval = time.Second
	}
	if opts.IndexChunk <= 0 {
		opts.IndexChunk = 20000
	}
	if opts.IndexTxRows <= 0 {
		opts.IndexTxRows = 1000
	}
	if opts.MaxInflightBytes <= 0 {
		opts.MaxInflightBytes = 64 << 20
	}
	if opts.MaxInflightBytesPerKey <= 0 {
		opts.MaxInflightBytesPerKey = opts.MaxInflightBytes / 2
	}
	if opts.AdmitWait <= 0 {
		opts.AdmitWait = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	st, err := store.Open(db, store.Options{Partitions: opts.Partitions, Retention: opts.Retention, Clock: opts.Clock, Purge: opts.Log != nil, ServeLinger: opts.ServeLinger})
	if err != nil {
		return nil, err
	}
	var served stream.Backend = st.Log()
	var mirror *stream.Mirror
	if opts.Log != nil {
		if mirror, err = stream.NewMirror(st.Log(), opts.Log, stream.MirrorOptions{Clock: opts.Clock, Logger: opts.Logger}); err != nil {
			return nil, fmt.Errorf("replicate the event log: %w", err)
		}
		served = opts.Log
	}
	batches := admit.New("ingestion batches", admit.Limits{
		Bytes: opts.MaxInflightBytes, KeyBytes: opts.MaxInflightBytesPerKey, Wait: opts.AdmitWait, Target: opts.AdmitTarget,
	}, opts.Clock)
	return &App{db: db, st: st, opts: opts, batches: batches, served: served, mirror: mirror}, nil
}

// Log returns the event log in ingestion.db.
func (a *App) Log() *stream.Log { return a.st.Log() }

// Served returns the log Subscribe serves: Log, or the replicated backend
// (Options.Log).
func (a *App) Served() stream.Backend { return a.served }

// Partitions is the number of partitions of the event log.
func (a *App) Partitions() uint32 { return a.st.Log().Partitions() }

// LogInfo describes the event log: its retention, the dedup window and the
// offsets each partition holds.
func (a *App) LogInfo() *ingestionv1.GetLogInfoResponse {
	l := a.served
	resp := &ingestionv1.GetLogInfoResponse{
		RetentionSeconds:   int64(a.opts.Retention / time.Second),
		DedupWindowSeconds: int64(a.opts.DedupWindow / time.Second),
	}
	for p := range l.Partitions() {
		resp.Partitions = append(resp.Partitions, &commonv1.PartitionInfo{Partition: p, FirstOffset: l.First(p), LastOffset: l.Head(p)})
	}
	return resp
}

// write runs fn in a write transaction and returns its result: a group
// commit shared with concurrent callers (fn may run more than once, and the
// result is the committed run's), or its own transaction with
// NoGroupCommit.
func write[T any](ctx context.Context, a *App, fn func(*pkgstore.Tx) (T, error)) (T, error) {
	if a.opts.NoGroupCommit {
		var v T
		err := a.db.Update(func(tx *pkgstore.Tx) error {
			var err error
			v, err = fn(tx)
			return err
		})
		return v, err
	}
	return pkgstore.CommitValue(ctx, a.db, fn)
}

// writer is write for a function that works on the store's Writer.
func writer[T any](ctx context.Context, a *App, fn func(*store.Writer) (T, error)) (T, error) {
	return write(ctx, a, func(tx *pkgstore.Tx) (T, error) {
		w, err := a.st.Writer(tx)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(w)
	})
}

// Admit charges a batch of size bytes sent with the API key key against
// the in-flight budget, overall (MaxInflightBytes) and the key's
// (MaxInflightBytesPerKey), waiting at most AdmitWait for room, or refuses
// it with ResourceExhausted and a retry delay sized from the backlog
// (pkg/admit). A batch larger than a budget is admitted alone, so that a
// budget smaller than one batch cannot wedge the service. Every admitted
// batch's ticket must be released once processed.
func (a *App) Admit(ctx context.Context, key string, size int) (*admit.Ticket, error) {
	return a.batches.Acquire(ctx, key, int64(size))
}

// SubscriberLag is how many records the furthest-behind subscriber of the
// event log has not been sent yet (stream.Log.SubscriberLag).
func (a *App) SubscriberLag() uint64 { return a.served.SubscriberLag() }

// checkLag refuses a write while the subscribers are further behind than
// the lag budget.
func (a *App) checkLag() error {
	if a.opts.LagBudget == 0 {
		return nil
	}
	if lag := a.SubscriberLag(); lag > a.opts.LagBudget {
		a.lagShed.Add(1)
		return apierr.Exhausted(a.opts.LagRetry, "the services behind ingestion are %d events behind, over the lag budget of %d (-lag-budget): retry later", lag, a.opts.LagBudget)
	}
	return nil
}

// LagShed is how many Ingest calls the lag budget has refused.
func (a *App) LagShed() uint64 { return a.lagShed.Load() }

// Inflight is the bytes of the batches admitted and not yet released.
func (a *App) Inflight() int64 { return a.batches.Stats().Bytes }

// Batches is the admission controller of the in-flight budget, for its
// metrics and for reclaiming memory after a burst (pkg/admit.Reclaimer).
func (a *App) Batches() *admit.Controller { return a.batches }
