// Package app is the stages service's application layer. It applies
// ingestion records to journey state (the consumer's Apply: aggregates,
// evaluation, transitions, signals, stage visits, durable timers and the
// stages log, all in the consumer's transaction so that state, cursor and
// outputs commit together), fires timers, runs replays, and serves the use
// cases of the API: journey definitions, activation, account queries,
// funnels and insights. It owns every transaction; internal/store reads
// and writes the buckets, internal/journey and internal/insight hold the
// pure rules.
package app

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ConsumerName names the live ingestion consumer (its cursors); replays
// read the ingestion log up to its cursors.
const ConsumerName = "ingestion"

// Log is where outputs go: the stages log.
type Log interface {
	// AppendTx appends inside the caller's write transaction.
	AppendTx(tx *pstore.Tx, p uint32, data []byte) (uint64, error)
	// Partitions is the log's partition count.
	Partitions() uint32
}

// Options configure an App.
type Options struct {
	// DB is the stages bbolt file.
	DB *pstore.DB
	// Log receives transitions, signals and forwarded tombstones.
	Log Log
	// Source reads the ingestion log from offset 0 for replays; nil
	// disables replays.
	Source stream.Source[*ingestionv1.LogRecord]
	// Partitions is the ingestion partition count (default 1).
	Partitions uint32
	// Clock drives timers, stamps definitions and is the evaluation time
	// of queries.
	Clock clock.Clock
	// Logger reports timer and replay failures.
	Logger *slog.Logger
	// Registerer, when set, receives the evaluation metrics.
	Registerer prometheus.Registerer
	// MaxTimerWait caps how long the timer loop sleeps before re-reading the
	// earliest timer (default 1 minute), so a timer armed concurrently is at
	// most this late.
	MaxTimerWait time.Duration
}

// App is the stages application. It is safe for concurrent use.
type App struct {
	db     *pstore.DB
	log    Log
	source stream.Source[*ingestionv1.LogRecord]
	parts  uint32
	clock  clock.Clock
	logger *slog.Logger
	wait   time.Duration

	mu       sync.Mutex
	journeys map[string]*compiled
	wake     chan struct{}
	cache    *stateCache
	replays  *replays

	transitions *prometheus.CounterVec
	signals     *prometheus.CounterVec
	applyTime   prometheus.Histogram
	timersFired prometheus.Counter
}

// compiled is a stored journey version, compiled once, with a pool of
// evaluators.
type compiled struct {
	j    *journey.Journey
	pool sync.Pool
}

// New returns an app.
func New(opts Options) (*App, error) {
	if opts.DB == nil || opts.Log == nil {
		return nil, errors.New("new stages app: DB and Log are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxTimerWait <= 0 {
		opts.MaxTimerWait = time.Minute
	}
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	a := &App{
		db: opts.DB, log: opts.Log, source: opts.Source, parts: opts.Partitions,
		clock: opts.Clock, logger: opts.Logger, wait: opts.MaxTimerWait,
		journeys: map[string]*compiled{}, wake: make(chan struct{}, 1), cache: newStateCache(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_stages_transitions_total", Help: "Stage transitions committed, by cause.",
		}, []string{"cause"}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_stages_signals_total", Help: "Drop-off signals committed, by state.",
		}, []string{"state"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_stages_apply_seconds", Help: "Time to apply one batch of ingestion records (aggregates and evaluation).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		timersFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_stages_timers_fired_total", Help: "Durable timers fired.",
		}),
	}
	a.replays = newReplays(a)
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{a.transitions, a.signals, a.applyTime, a.timersFired} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register stages metrics: %w", err)
			}
		}
	}
	return a, nil
}

// journey returns the compiled journey for a stored version.
func (a *App) journey(tx *pstore.Tx, ws, id string, version uint32) (*journey.Journey, error) {
	c, err := a.compiled(tx, ws, id, version)
	if err != nil {
		return nil, err
	}
	return c.j, nil
}

func (a *App) compiled(tx *pstore.Tx, ws, id string, version uint32) (*compiled, error) {
	key := string(store.Key(ws, id, strconv.FormatUint(uint64(version), 10)))
	a.mu.Lock()
	c, ok := a.journeys[key]
	a.mu.Unlock()
	if ok {
		return c, nil
	}
	def, err := store.GetDefinition(tx, ws, id, version)
	if err != nil {
		return nil, err
	}
	j, err := journey.Compile(def)
	if err != nil {
		return nil, fmt.Errorf("compile stored journey %q v%d: %w", id, version, err)
	}
	c = &compiled{j: j}
	c.pool.New = func() any { return j.NewEvaluator() }
	a.mu.Lock()
	a.journeys[key] = c
	a.mu.Unlock()
	return c, nil
}

// installDefault applies the default template as journey "default" v1 when
// the workspace has no journey, and returns the active journeys.
func (a *App) installDefault(tx *pstore.Tx, ws string) ([]store.ActiveJourney, error) {
	active, err := store.ActiveJourneys(tx, ws)
	if err != nil || len(active) > 0 {
		return active, err
	}
	if v, err := store.LatestVersion(tx, ws, journey.DefaultJourney); err != nil || v > 0 {
		// Versions exist but none is active: the workspace chose that.
		return nil, err
	}
	def, err := journey.Template(journey.DefaultTemplate)
	if err != nil {
		return nil, err
	}
	def.Id, def.Version, def.CreatedAt = journey.DefaultJourney, 1, timestamppb.New(a.clock.Now())
	if err := store.PutDefinition(tx, ws, def); err != nil {
		return nil, err
	}
	if err := store.SetActive(tx, ws, def.Id, 1); err != nil {
		return nil, err
	}
	return []store.ActiveJourney{{ID: def.Id, Version: 1}}, nil
}

// poke wakes the timer loop: new timers may be due earlier.
func (a *App) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}
