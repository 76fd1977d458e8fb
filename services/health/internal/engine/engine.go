// Package engine applies upstream records (ingestion events, stage
// transitions, tombstones), daily timers and full rescoring to the health
// store. Every change happens inside the caller's bbolt transaction, so an
// account's state, its outputs on the health log and the consumer cursors
// commit together.
//
// Every event is evaluated at its own event time, and evaluation time never
// moves backwards for an account, so the outcome does not depend on how the
// upstream log was batched: a restart mid-stream equals a clean run.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// Appender is the health log as the engine needs it; *stream.Log implements it.
type Appender interface {
	// AppendTx appends data to partition p inside tx.
	AppendTx(tx *bbolt.Tx, p uint32, data []byte) (uint64, error)
	// Partitions is the log's partition count.
	Partitions() uint32
}

// Config wires an Engine.
type Config struct {
	// Log receives score changes, signals and forwarded tombstones.
	Log Appender
	// Clock drives timers and stamps model versions.
	Clock clock.Clock
	// Logger reports skipped records.
	Logger *slog.Logger
	// Registerer receives cairn_health_evaluation_seconds and
	// cairn_health_signals_total; nil disables them.
	Registerer prometheus.Registerer
}

// Engine holds the compiled models; it is safe for concurrent use.
type Engine struct {
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

// New builds an Engine with the built-in default model compiled.
func New(cfg Config) (*Engine, error) {
	if cfg.Log == nil || cfg.Clock == nil {
		return nil, errors.New("engine: Log and Clock are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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
	e := &Engine{log: cfg.Log, clk: cfg.Clock, logger: cfg.Logger, comp: comp, def: def, models: map[string]cachedModel{}, reaches: map[*model.Compiled]int{}, chunk: rescoreChunk,
		signalCounters: map[[2]int32]prometheus.Counter{},
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_health_evaluation_seconds", Help: "Time to rescore one account after an event, stage change or timer.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
		signalsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_health_signals_total", Help: "Signal transitions published, by kind and state.",
		}, []string{"kind", "state"}),
	}
	e.acts.New = func() any { return measure.NewActivation() }
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{e.evalSeconds, e.signalsOut} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register health metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Compiler is the CEL compiler for measures, for validation by the server.
func (e *Engine) Compiler() *measure.Compiler { return e.comp }

// Default returns the built-in default model.
func (e *Engine) Default() *model.Compiled { return e.def }

// Model returns the workspace's active compiled model (the built-in default
// when none was activated). The cache is checked against the stored active
// version on every call, so activation needs no invalidation.
func (e *Engine) Model(tx *bbolt.Tx, ws string) (*model.Compiled, error) {
	id, ver, err := store.Active(tx, ws)
	if errors.Is(err, store.ErrNotFound) {
		return e.def, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read active model: %w", err)
	}
	e.mu.Lock()
	cm, ok := e.models[ws]
	e.mu.Unlock()
	if ok && cm.id == id && cm.version == ver {
		return cm.c, nil
	}
	m, err := store.GetModel(tx, ws, id, ver)
	if err != nil {
		return nil, err
	}
	c, err := model.Compile(m, e.comp)
	if err != nil {
		// Stored models were validated when applied, so this only happens
		// when the measure language changed under them. Scoring with the
		// default keeps the consumers moving instead of retrying a poison
		// batch forever; the error is logged once per version.
		e.logger.Error("active model no longer compiles; scoring with the built-in default",
			"workspace", ws, "model", id, "version", ver, "err", err)
		c = e.def
	}
	e.mu.Lock()
	e.models[ws] = cachedModel{id: id, version: ver, c: c}
	e.mu.Unlock()
	return c, nil
}

// batch caches decoded accounts for one transaction and writes each once.
type batch struct {
	e     *Engine
	tx    *bbolt.Tx
	accts map[[2]string]*state
	order [][2]string
}

type state struct {
	acc    *store.Account
	health *healthv1.AccountHealth
	// aggDirty is set when events changed the aggregate, which then must be
	// written back; evaluations alone only touch the small meta record.
	aggDirty bool
}

func (e *Engine) newBatch(tx *bbolt.Tx) *batch {
	return &batch{e: e, tx: tx, accts: map[[2]string]*state{}}
}

func (b *batch) get(ws, acct string, create bool) (*state, error) {
	k := [2]string{ws, acct}
	if st, ok := b.accts[k]; ok {
		return st, nil
	}
	acc, err := store.GetAccount(b.tx, ws, acct)
	fresh := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !create {
			return nil, nil
		}
		acc, fresh = &store.Account{Agg: account.New(ws, acct)}, true
	case err != nil:
		return nil, err
	}
	st := &state{acc: acc, aggDirty: fresh}
	h, err := store.GetHealth(b.tx, ws, acct)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		st.health = h
	}
	b.accts[k] = st
	b.order = append(b.order, k)
	return st, nil
}

func (b *batch) forget(ws, acct string) {
	delete(b.accts, [2]string{ws, acct})
}

// flush writes every touched account once.
func (b *batch) flush() error {
	for _, k := range b.order {
		st, ok := b.accts[k]
		if !ok {
			continue
		}
		if err := store.PutAccount(b.tx, st.acc, st.aggDirty); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) publish(ws, acct string, rec *healthv1.LogRecord) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return fmt.Errorf("marshal health log record: %w", err)
	}
	if _, err := b.e.log.AppendTx(b.tx, stream.Partition(ws, acct, b.e.log.Partitions()), data); err != nil {
		return fmt.Errorf("append to health log: %w", err)
	}
	return nil
}

// ApplyIngestion folds a batch of ingestion log records into the store.
// Events without an account are skipped; tombstones forget the subject and
// are forwarded on the health log.
func (e *Engine) ApplyIngestion(tx *bbolt.Tx, _ uint32, recs []*ingestionv1.LogRecord) error {
	b := e.newBatch(tx)
	for _, r := range recs {
		switch k := r.GetKind().(type) {
		case *ingestionv1.LogRecord_Event:
			ev := k.Event
			if ev.GetWorkspace() == "" || ev.GetAccountId() == "" {
				continue
			}
			st, err := b.get(ev.GetWorkspace(), ev.GetAccountId(), true)
			if err != nil {
				return err
			}
			st.acc.Agg.Apply(ev, &measure.Config)
			st.aggDirty = true
			if err := b.evaluate(st, account.EventTime(ev)); err != nil {
				return fmt.Errorf("evaluate %q after offset %d: %w", ev.GetAccountId(), r.GetOffset(), err)
			}
		case *ingestionv1.LogRecord_Tombstone:
			if err := b.tombstone(k.Tombstone, true); err != nil {
				return err
			}
		}
	}
	return b.flush()
}

// ApplyStages records each account's current stage and rescores it, so
// measures may use stage and days_in_stage. Stage signals are not health's
// business; stage tombstones are applied but not forwarded (ingestion's are).
func (e *Engine) ApplyStages(tx *bbolt.Tx, _ uint32, recs []*stagesv1.LogRecord) error {
	b := e.newBatch(tx)
	for _, r := range recs {
		switch k := r.GetKind().(type) {
		case *stagesv1.LogRecord_Transition:
			t := k.Transition
			if t.GetWorkspace() == "" || t.GetAccountId() == "" || t.GetToStage() == "" {
				continue
			}
			st, err := b.get(t.GetWorkspace(), t.GetAccountId(), true)
			if err != nil {
				return err
			}
			at := t.GetAt().AsTime()
			st.acc.Stage, st.acc.EnteredAt = t.GetToStage(), at
			if err := b.evaluate(st, at); err != nil {
				return fmt.Errorf("evaluate %q after stage offset %d: %w", t.GetAccountId(), r.GetOffset(), err)
			}
		case *stagesv1.LogRecord_Tombstone:
			if err := b.tombstone(k.Tombstone, false); err != nil {
				return err
			}
		}
	}
	return b.flush()
}

func (b *batch) tombstone(t *commonv1.Tombstone, forward bool) error {
	ws := t.GetWorkspace()
	if ws == "" {
		return nil
	}
	switch {
	case t.GetAccountId() != "":
		if err := b.flush(); err != nil {
			return err
		}
		b.forget(ws, t.GetAccountId())
		if err := store.DeleteAccount(b.tx, ws, t.GetAccountId()); err != nil {
			return fmt.Errorf("forget account %q: %w", t.GetAccountId(), err)
		}
	case t.GetUserId() != "":
		if err := b.flush(); err != nil {
			return err
		}
		var hit []string
		if err := store.ForEachAccount(b.tx, ws, func(a *store.Account) error {
			if _, ok := a.Agg.Users[t.GetUserId()]; ok {
				hit = append(hit, a.Agg.AccountID)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("find accounts of user: %w", err)
		}
		for _, acct := range hit {
			st, err := b.get(ws, acct, false)
			if err != nil {
				return err
			}
			if st != nil {
				st.acc.Agg.ForgetUser(t.GetUserId())
				st.aggDirty = true
			}
		}
	default:
		return nil
	}
	if !forward {
		return nil
	}
	return b.publish(ws, t.GetAccountId(), &healthv1.LogRecord{Kind: &healthv1.LogRecord_Tombstone{Tombstone: t}})
}

// evaluate rescores one account as of at and publishes what changed.
func (b *batch) evaluate(st *state, at time.Time) error {
	// Wall time on purpose: this is a latency metric, not a rule input.
	start := time.Now()
	defer func() { b.e.evalSeconds.Observe(time.Since(start).Seconds()) }()
	cm, err := b.e.Model(b.tx, st.acc.Agg.Workspace)
	if err != nil {
		return err
	}
	at = asOf(st.acc, at)
	pr, err := priorsIn(b.tx, st.acc.Agg.Workspace, st.acc.Agg.AccountID, at)
	if err != nil {
		return err
	}
	act := b.e.acts.Get().(*measure.Activation)
	out, err := compute(st, cm, at, pr, act)
	act.Reset(measure.Input{}) // keep no account alive in the pool
	b.e.acts.Put(act)
	if err != nil {
		return err
	}
	return b.commit(st, out)
}

// asOf is the evaluation time: never before the account's last evaluation,
// so evaluation order cannot move an account back in time.
func asOf(acc *store.Account, at time.Time) time.Time {
	at = at.UTC()
	if at.Before(acc.LastEval) {
		return acc.LastEval
	}
	return at
}

// priors are the scores of the snapshots 7 and 30 days before an
// evaluation, for the trend; has7/has30 are false when there is none.
type priors struct {
	d7, d30     float64
	has7, has30 bool
}

// priorsIn reads the trend inputs of acct as of at from tx.
func priorsIn(tx *bbolt.Tx, ws, acct string, at time.Time) (priors, error) {
	return priorsFrom(func(day string) (float64, error) { return store.SnapshotScoreAt(tx, ws, acct, day) }, at)
}

// priorsFrom reads the trend inputs as of at with scoreAt, which returns the
// score of the latest snapshot on or before a day.
func priorsFrom(scoreAt func(day string) (float64, error), at time.Time) (priors, error) {
	var p priors
	for _, x := range []struct {
		days int
		dst  *float64
		has  *bool
	}{{7, &p.d7, &p.has7}, {30, &p.d30, &p.has30}} {
		score, err := scoreAt(at.AddDate(0, 0, -x.days).Format(time.DateOnly))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return p, err
		}
		*x.dst, *x.has = score, true
	}
	return p, nil
}

// outcome is everything an evaluation produced, already encoded, so that a
// rescore can compute accounts in parallel and only write in the transaction.
type outcome struct {
	health *healthv1.AccountHealth
	enc    store.Encoded
	// records are encoded health-log records, in publishing order.
	records [][]byte
}

// compute scores st as of at (see asOf) with cm and updates st.acc's meta.
// It reads and writes nothing else, so it is safe to run concurrently for
// different accounts. act, when not nil, is reused for the measures (one per
// goroutine).
func compute(st *state, cm *model.Compiled, at time.Time, pr priors, act *measure.Activation) (*outcome, error) {
	acc := st.acc
	ws, acct := acc.Agg.Workspace, acc.Agg.AccountID
	acc.LastEval = at
	if act == nil {
		act = measure.NewActivation()
	}
	act.Reset(measure.Input{Agg: acc.Agg, Now: at, Stage: acc.Stage, EnteredAt: acc.EnteredAt})
	res := cm.Score(act)
	prev := st.health
	h := &healthv1.AccountHealth{
		Workspace: ws, AccountId: acct, Score: res.Score, Band: res.Band, Components: res.Components,
		ModelId: cm.Model.GetId(), ModelVersion: cm.Model.GetVersion(), Profile: res.Profile,
		ComputedAt: timestamppb.New(at), Stage: acc.Stage, Arr: acc.Agg.ARR, PreviousScore: res.Score,
	}
	if h.ModelId == "" {
		h.ModelId = "default"
	}
	if acc.Agg.ContractEnd != 0 {
		h.ContractEnd = &timestamppb.Timestamp{Seconds: acc.Agg.ContractEnd}
	}
	out := &outcome{health: h, enc: store.Encoded{Workspace: ws, Account: acct, Day: at.Format(time.DateOnly)}}
	moved := prev == nil || math.Abs(prev.GetScore()-res.Score) >= 0.005 || prev.GetBand() != res.Band
	if prev != nil {
		if moved || prev.GetProfile() != res.Profile || prev.GetModelVersion() != h.ModelVersion {
			h.PreviousScore = prev.GetScore()
			h.Changes = model.Changes(prev.GetComponents(), res.Components, prev.GetProfile(), res.Profile)
		} else {
			h.PreviousScore, h.Changes = prev.GetPreviousScore(), prev.GetChanges()
		}
	}
	trend := func(p float64, ok bool) float64 {
		if !ok {
			return 0
		}
		return math.Round((res.Score-p)*100) / 100
	}
	h.Trend_7D, h.Trend_30D = trend(pr.d7, pr.has7), trend(pr.d30, pr.has30)
	h.Direction = "flat"
	switch {
	case h.Trend_7D > 2:
		h.Direction = "up"
	case h.Trend_7D < -2:
		h.Direction = "down"
	}

	// Signals: each change is stored and published.
	sst := &signals.State{Open: map[string]*commonv1.Signal{}, DropFrom: acc.DropFrom}
	for _, s := range prev.GetOpenSignals() {
		sst.Open[s.GetReason()] = s
	}
	prevBand := healthv1.Band_BAND_UNSPECIFIED
	if prev != nil {
		prevBand = prev.GetBand()
	}
	conds := signals.Evaluate(signals.Facts{Agg: acc.Agg, Now: at, Band: res.Band, PrevBand: prevBand}, sst)
	acc.DropFrom = sst.DropFrom
	for _, s := range signals.Diff(ws, acct, sst, conds, at) {
		data, err := store.MarshalSignal(s)
		if err != nil {
			return nil, fmt.Errorf("marshal signal: %w", err)
		}
		out.enc.Signals = append(out.enc.Signals, store.EncodedSignal{Signal: s, Data: data})
		out.records = append(out.records, store.SignalRecord(data))
	}
	reasons := make([]string, 0, len(sst.Open))
	for r := range sst.Open {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	play := ""
	for _, r := range reasons {
		s := sst.Open[r]
		h.OpenSignals = append(h.OpenSignals, s)
		if s.GetKind() == commonv1.SignalKind_SIGNAL_KIND_RENEWAL {
			play = s.GetAttributes()["play"]
		}
	}
	if moved {
		sc := &healthv1.ScoreChange{Workspace: ws, AccountId: acct, PreviousScore: prev.GetScore(), Score: res.Score,
			PreviousBand: prevBand, Band: res.Band, At: timestamppb.New(at)}
		data, err := store.MarshalScoreChangeRecord(sc)
		if err != nil {
			return nil, fmt.Errorf("marshal health log record: %w", err)
		}
		out.records = append(out.records, data)
	}

	var small [16]store.Measured
	measured := small[:0]
	for i, c := range res.Components {
		measured = append(measured, store.Measured{Name: c.GetName(), Points: c.GetPoints(), Key: res.Keys[i],
			Raw: c.GetRawValue(), HasRaw: c.GetError() == ""})
	}
	out.enc.Snapshot = store.EncodeSnapshotOf(out.enc.Day, res.Score, res.Band, res.When, measured)
	row := &healthv1.AccountRow{AccountId: acct, Score: res.Score, Band: res.Band, ScoreChange_30D: h.Trend_30D,
		Arr: acc.Agg.ARR, ContractEnd: h.ContractEnd, OpenSignals: int32(len(h.OpenSignals)), Stage: acc.Stage, RenewalPlay: play}
	var err error
	if out.enc.Row, err = store.MarshalRow(row); err != nil {
		return nil, fmt.Errorf("marshal account row: %w", err)
	}
	if out.enc.Health, err = store.MarshalHealth(h); err != nil {
		return nil, fmt.Errorf("marshal account health: %w", err)
	}
	return out, nil
}

// commit writes an outcome, publishes its records and re-arms the daily timer.
func (b *batch) commit(st *state, out *outcome) error {
	if err := store.PutEncoded(b.tx, &out.enc); err != nil {
		return err
	}
	p := stream.Partition(out.enc.Workspace, out.enc.Account, b.e.log.Partitions())
	for _, r := range out.records {
		if _, err := b.e.log.AppendTx(b.tx, p, r); err != nil {
			return fmt.Errorf("append to health log: %w", err)
		}
	}
	for _, s := range out.enc.Signals {
		b.e.countSignal(s.Signal)
	}
	st.health = out.health
	return store.ArmTimer(b.tx, out.enc.Workspace, out.enc.Account, b.e.nextCheck())
}

// nextCheck is when a daily timer armed now is due: time-based conditions
// (renewal windows, "after 30 days") are rechecked at the next UTC midnight
// of the service clock.
func (e *Engine) nextCheck() time.Time {
	return e.clk.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// countSignal counts a published signal transition.
func (e *Engine) countSignal(s *commonv1.Signal) {
	k := [2]int32{int32(s.GetKind()), int32(s.GetState())}
	e.mu.Lock()
	c, ok := e.signalCounters[k]
	if !ok {
		c = e.signalsOut.WithLabelValues(strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "SIGNAL_KIND_")),
			strings.ToLower(strings.TrimPrefix(s.GetState().String(), "SIGNAL_STATE_")))
		e.signalCounters[k] = c
	}
	e.mu.Unlock()
	c.Inc()
}
