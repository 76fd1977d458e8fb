package app

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// asOf is the evaluation time: never before the account's last evaluation,
// so evaluation order cannot move an account back in time.
func asOf(acc *store.Account, at time.Time) time.Time {
	at = at.UTC()
	if at.Before(acc.LastEval) {
		return acc.LastEval
	}
	return at
}

// priorsIn reads the trend inputs of acct as of at from tx.
func priorsIn(tx *kv.Tx, ws, acct string, at time.Time) (model.Priors, error) {
	return priorsFrom(func(day string) (float64, error) { return store.SnapshotScoreAt(tx, ws, acct, day) }, at)
}

// priorsFrom reads the trend inputs as of at with scoreAt, which returns the
// score of the latest snapshot on or before a day.
func priorsFrom(scoreAt func(day string) (float64, error), at time.Time) (model.Priors, error) {
	var p model.Priors
	for _, x := range []struct {
		days int
		dst  *float64
		has  *bool
	}{{7, &p.D7, &p.Has7}, {30, &p.D30, &p.Has30}} {
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

// outcome is everything an evaluation produced, its records already
// encoded, so that a rescore can compute accounts in parallel and only write
// in the transaction. The account's health and list row are encoded by
// encode: a consumer's batch keeps only an account's last evaluation of the
// batch and encodes that one.
type outcome struct {
	health *healthv1.AccountHealth
	// row is the account's list row; nil for an account that is not
	// scored (it leaves the lists).
	row *healthv1.AccountRow
	// enc holds the encoded records; Health and Row are set by encode.
	enc store.Encoded
	// records are encoded health-log records, in publishing order.
	records [][]byte
	// arm says the account is scored and keeps a timer for its time rules;
	// an account that is not paying has none (its next event evaluates it).
	arm bool
	// next is when a time rule of the signals next changes its answer
	// (signals.NextChange), as of the evaluation time.
	next time.Time
}

// scoredBefore reports whether prev is a customer health score (or the
// frozen last one of a churned account). Records written before lifecycles
// existed have no lifecycle and were all scored.
func scoredBefore(prev *healthv1.AccountHealth) bool {
	return prev != nil && (prev.GetScored() || prev.GetLifecycle() == nil || prev.GetAsOf() != nil)
}

// compute scores st as of at (see asOf) with cm and updates st.acc's meta.
// It reads and writes nothing else, so it is safe to run concurrently for
// different accounts. priors gives the trend inputs; it is called only for
// a paying account, the only kind with past scores, so that a prospect's
// or trial's events (most of the traffic in a product-led funnel) skip the
// snapshot lookups. act, when not nil, is reused for the measures (one per
// goroutine).
func compute(st *state, cm *model.Compiled, at time.Time, priors func() (model.Priors, error), act *measure.Activation) (*outcome, error) {
	acc := st.acc
	ws, acct := acc.Agg.Workspace, acc.Agg.AccountID
	acc.LastEval = at
	lc := acc.Agg.Lifecycle()
	if !lc.Status.Paying() {
		return unscored(st, cm, at, lc)
	}
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
		Scored: true, Lifecycle: lc.Proto(), AsOf: timestamppb.New(at),
	}
	if h.ModelId == "" {
		h.ModelId = "default"
	}
	if acc.Agg.ContractEnd != 0 {
		h.ContractEnd = &timestamppb.Timestamp{Seconds: acc.Agg.ContractEnd}
	}
	out := &outcome{health: h, enc: store.Encoded{Workspace: ws, Account: acct, Day: at.Format(time.DateOnly)}, arm: true}
	if !scoredBefore(prev) {
		// A trial that converted: its first customer score.
		prev = nil
	}
	pr, err := priors()
	if err != nil {
		return nil, err
	}
	moved := model.Follow(h, prev, pr)

	// Signals: each change is stored and published.
	sst := &signals.State{Open: map[string]*commonv1.Signal{}, DropFrom: acc.DropFrom}
	for _, s := range st.health.GetOpenSignals() {
		sst.Open[s.GetReason()] = s
	}
	prevBand := healthv1.Band_BAND_UNSPECIFIED
	if prev != nil && (prev.GetScored() || prev.GetLifecycle() == nil) {
		// Not a churned account's frozen band: a win-back is no band drop.
		prevBand = prev.GetBand()
	}
	conds := signals.Evaluate(signals.Facts{Agg: acc.Agg, Now: at, Band: res.Band, PrevBand: prevBand, Features: measure.Features(cm.Model)}, sst)
	acc.DropFrom = sst.DropFrom
	out.next = signals.NextChange(signals.Facts{Agg: acc.Agg, Now: at})
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
	out.row = &healthv1.AccountRow{AccountId: acct, Score: res.Score, Band: res.Band, ScoreChange_30D: h.Trend_30D,
		Arr: acc.Agg.ARR, ContractEnd: h.ContractEnd, OpenSignals: int32(len(h.OpenSignals)), Stage: acc.Stage, RenewalPlay: play}
	return out, nil
}

// encode sets o.enc's Health and Row from o.health and o.row.
func (o *outcome) encode() error {
	var err error
	if o.enc.Health, err = store.MarshalHealth(o.health); err != nil {
		return fmt.Errorf("marshal account health: %w", err)
	}
	if o.row == nil {
		o.enc.Row = nil
		return nil
	}
	if o.enc.Row, err = store.MarshalRow(o.row); err != nil {
		return fmt.Errorf("marshal account row: %w", err)
	}
	return nil
}

// unscored evaluates an account that is not paying (a prospect, a trial or
// a churned account): customer health is for customers only. It gets no
// score, snapshot, list row or timer, and its open signals close with
// attributes["closed_reason"] set to its status ("churned"). A churned
// account keeps its last score, band and explanation, frozen as of
// AccountHealth.as_of, for history; it is not scored (scored false).
func unscored(st *state, cm *model.Compiled, at time.Time, lc account.Lifecycle) (*outcome, error) {
	acc, prev := st.acc, st.health
	ws, acct := acc.Agg.Workspace, acc.Agg.AccountID
	h := &healthv1.AccountHealth{
		Workspace: ws, AccountId: acct, ModelId: cm.Model.GetId(), ModelVersion: cm.Model.GetVersion(),
		ComputedAt: timestamppb.New(at), Stage: acc.Stage, Arr: acc.Agg.ARR, Lifecycle: lc.Proto(),
	}
	if h.ModelId == "" {
		h.ModelId = "default"
	}
	if acc.Agg.ContractEnd != 0 {
		h.ContractEnd = &timestamppb.Timestamp{Seconds: acc.Agg.ContractEnd}
	}
	if lc.Status == account.StatusChurned && scoredBefore(prev) {
		h.Score, h.Band, h.Components, h.Profile = prev.GetScore(), prev.GetBand(), prev.GetComponents(), prev.GetProfile()
		h.PreviousScore, h.Changes = prev.GetPreviousScore(), prev.GetChanges()
		h.Trend_7D, h.Trend_30D, h.Direction = prev.GetTrend_7D(), prev.GetTrend_30D(), prev.GetDirection()
		h.ModelId, h.ModelVersion = prev.GetModelId(), prev.GetModelVersion()
		h.AsOf = prev.GetAsOf()
		if h.AsOf == nil {
			h.AsOf = prev.GetComputedAt()
		}
	}
	// No snapshot, so no snapshot day.
	out := &outcome{health: h, enc: store.Encoded{Workspace: ws, Account: acct}}
	sst := &signals.State{Open: map[string]*commonv1.Signal{}}
	for _, s := range prev.GetOpenSignals() {
		sst.Open[s.GetReason()] = s
	}
	acc.DropFrom = 0
	for _, s := range signals.Diff(ws, acct, sst, nil, at) {
		attrs := make(map[string]string, len(s.GetAttributes())+1)
		for k, v := range s.GetAttributes() {
			attrs[k] = v
		}
		attrs[ClosedReasonKey] = string(lc.Status)
		s.Attributes = attrs
		data, err := store.MarshalSignal(s)
		if err != nil {
			return nil, fmt.Errorf("marshal signal: %w", err)
		}
		out.enc.Signals = append(out.enc.Signals, store.EncodedSignal{Signal: s, Data: data})
		out.records = append(out.records, store.SignalRecord(data))
	}
	if prev != nil && (prev.GetScored() || prev.GetLifecycle() == nil) {
		// It had a live score: say on the log that it has none now, so that
		// consumers (routing's health band) drop it.
		sc := &healthv1.ScoreChange{Workspace: ws, AccountId: acct, PreviousScore: prev.GetScore(),
			PreviousBand: prev.GetBand(), At: timestamppb.New(at)}
		data, err := store.MarshalScoreChangeRecord(sc)
		if err != nil {
			return nil, fmt.Errorf("marshal health log record: %w", err)
		}
		out.records = append(out.records, data)
	}
	return out, nil
}

// ClosedReasonKey is the signal attribute saying why health closed a signal
// whose condition may still hold: the account stopped paying ("churned").
const ClosedReasonKey = "closed_reason"
