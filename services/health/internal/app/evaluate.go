package app

import (
	"errors"
	"fmt"
	"sort"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"google.golang.org/protobuf/types/known/timestamppb"

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
func compute(st *state, cm *model.Compiled, at time.Time, pr model.Priors, act *measure.Activation) (*outcome, error) {
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
	moved := model.Follow(h, prev, pr)

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
