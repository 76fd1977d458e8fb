// Package app is the health service's application layer: the use cases
// behind the API (apply, activate and read models, read account health,
// list accounts and signals, backtest, rescore), the consumers' Apply
// functions for the ingestion and stages logs, and the daily timer loop. It
// owns the transactions: every change happens inside one *store.Tx, so an
// account's state, its outputs on the health log and the consumer cursors
// commit together. Buckets and encodings are internal/store's; the scoring
// rules are internal/model's, internal/measure's and internal/signals'.
//
// Every event is evaluated at its own event time, and evaluation time never
// moves backwards for an account, so the outcome does not depend on how the
// upstream log was batched: a restart mid-stream equals a clean run.
package app

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// Appender is the health log as the app needs it; *stream.Log implements it.
type Appender interface {
	// AppendTx appends data to partition p inside tx.
	AppendTx(tx *kv.Tx, p uint32, data []byte) (uint64, error)
	// Partitions is the log's partition count.
	Partitions() uint32
}

// Options configure New.
type Options struct {
	// DB is the health store (required).
	DB *kv.DB
	// Log receives score changes, signals and forwarded tombstones
	// (required).
	Log Appender
	// Clock drives timers and stamps model versions (required).
	Clock clock.Clock
	// Logger reports skipped records.
	Logger *slog.Logger
	// Registerer receives cairn_health_evaluation_seconds and
	// cairn_health_signals_total; nil disables them.
	Registerer prometheus.Registerer
}

// App holds the store, the health log and the compiled models; it is safe
// for concurrent use.
type App struct {
	db     *kv.DB
	log    Appender
	clk    clock.Clock
	logger *slog.Logger
	comp   *measure.Compiler
	def    *model.Compiled

	mu     sync.Mutex
	models map[string]cachedModel
	// reaches caches reach() per compiled model (under mu).
	reaches map[*model.Compiled]int
	// acts are the measure activations of incremental evaluations (building
	// one binds every CEL function, which would cost more than the measures).
	acts sync.Pool
	// cache keeps the consumers' decoded accounts between batches.
	cache *accountCache

	// chunk is how many accounts a rescore commits per transaction
	// (rescoreChunk; tests lower it to exercise chunk boundaries).
	chunk int
	// beforeWrite, when set by tests, runs before a rescore writes chunk i.
	beforeWrite func(i int)

	evalSeconds prometheus.Histogram
	signalsOut  *prometheus.CounterVec
	// signalCounters caches signalsOut's children by kind and state (under mu).
	signalCounters map[[2]int32]prometheus.Counter
}

type cachedModel struct {
	id      string
	version uint32
	c       *model.Compiled
}

// New builds an App with the built-in default model compiled.
func New(o Options) (*App, error) {
	if o.DB == nil || o.Log == nil || o.Clock == nil {
		return nil, errors.New("app: DB, Log and Clock are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	comp, err := measure.NewCompiler()
	if err != nil {
		return nil, err
	}
	dm, err := model.Default()
	if err != nil {
		return nil, err
	}
	def, err := model.Compile(dm, comp)
	if err != nil {
		return nil, fmt.Errorf("compile built-in default model: %w", err)
	}
	a := &App{db: o.DB, log: o.Log, clk: o.Clock, logger: o.Logger, comp: comp, def: def, models: map[string]cachedModel{}, reaches: map[*model.Compiled]int{}, chunk: rescoreChunk,
		cache:          newAccountCache(accountCacheBytes),
		signalCounters: map[[2]int32]prometheus.Counter{},
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_health_evaluation_seconds", Help: "Time to rescore one account after an event, stage change or timer.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
		signalsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_health_signals_total", Help: "Signal transitions published, by kind and state.",
		}, []string{"kind", "state"}),
	}
	a.acts.New = func() any { return measure.NewActivation() }
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{a.evalSeconds, a.signalsOut} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register health metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Now is the service clock's time.
func (a *App) Now() time.Time { return a.clk.Now() }

// Compiler is the CEL compiler for measures.
func (a *App) Compiler() *measure.Compiler { return a.comp }

// Default returns the built-in default model.
func (a *App) Default() *model.Compiled { return a.def }

// Model returns the workspace's active compiled model (the built-in default
// when none was activated). The cache is checked against the stored active
// version on every call, so activation needs no invalidation.
func (a *App) Model(tx *kv.Tx, ws string) (*model.Compiled, error) {
	id, ver, err := store.Active(tx, ws)
	if errors.Is(err, store.ErrNotFound) {
		return a.def, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read active model: %w", err)
	}
	a.mu.Lock()
	cm, ok := a.models[ws]
	a.mu.Unlock()
	if ok && cm.id == id && cm.version == ver {
		return cm.c, nil
	}
	m, err := store.GetModel(tx, ws, id, ver)
	if err != nil {
		return nil, err
	}
	c, err := a.compile(m)
	if err != nil {
		// Stored models were validated when applied, so this only happens
		// when the measure language changed under them. Scoring with the
		// default keeps the consumers moving instead of retrying a poison
		// batch forever; the error is logged once per version.
		a.logger.Error("active model no longer compiles; scoring with the built-in default",
			"workspace", ws, "model", id, "version", ver, "err", err)
		c = a.def
	}
	a.mu.Lock()
	a.models[ws] = cachedModel{id: id, version: ver, c: c}
	a.mu.Unlock()
	return c, nil
}

// nextCheck is when a daily timer armed now is due at the latest: daily
// windows (usage, active users, features) are rechecked at the next UTC
// midnight of the service clock.
func (a *App) nextCheck() time.Time {
	return a.clk.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// dueAt is when an account's timer armed now is due: at the next change of
// one of its time rules (next, signals.NextChange: a renewal window
// opening, a ticket turning 7 days old...) when that comes before the next
// UTC midnight of the service clock, else at that midnight.
func (a *App) dueAt(next time.Time) time.Time { return a.dueBy(next, a.nextCheck()) }

// dueBy is dueAt with the midnight given. A next already past on the
// service clock (an account evaluated as of an earlier event time, as in a
// backfill) waits for the midnight, as every timer did before: firing at
// once would drag the account's evaluation time to the clock's now in the
// middle of a backfill.
func (a *App) dueBy(next, midnight time.Time) time.Time {
	if next.After(a.clk.Now()) && next.Before(midnight) {
		return next
	}
	return midnight
}

// countSignal counts a published signal transition.
func (a *App) countSignal(s *commonv1.Signal) {
	k := [2]int32{int32(s.GetKind()), int32(s.GetState())}
	a.mu.Lock()
	c, ok := a.signalCounters[k]
	if !ok {
		c = a.signalsOut.WithLabelValues(strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "SIGNAL_KIND_")),
			strings.ToLower(strings.TrimPrefix(s.GetState().String(), "SIGNAL_STATE_")))
		a.signalCounters[k] = c
	}
	a.mu.Unlock()
	c.Inc()
}
