package app

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Apply is the ingestion consumer's Apply: it folds ingestion records into
// live state inside tx. It only touches tx (and, on commit, the metrics and
// the state cache), so a group commit may run it more than once.
func (a *App) Apply(tx *pstore.Tx, _ uint32, recs []*ingestionv1.LogRecord) error {
	start := time.Now()
	b := a.newBatch(tx, store.Live, nil)
	defer func() { a.applyTime.Observe(time.Since(start).Seconds()) }()
	for _, r := range recs {
		switch k := r.GetKind().(type) {
		case *ingestionv1.LogRecord_Event:
			if err := b.event(k.Event, journey.CauseEvent); err != nil {
				return err
			}
		case *ingestionv1.LogRecord_Tombstone:
			if err := b.flush(); err != nil {
				return err
			}
			if err := b.tombstone(k.Tombstone); err != nil {
				return err
			}
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	a.poke()
	return nil
}

// only restricts a batch to one journey version (replays).
type only struct {
	ws, journey string
	version     uint32
}

// batch caches account state across the records of one transaction so that
// an account with many events is decoded and encoded once.
type batch struct {
	a        *App
	tx       *pstore.Tx
	ns       store.Namespace
	only     *only
	active   map[string][]store.ActiveJourney
	accounts map[string]*acctState
	order    []*acctState
	// publish is false for replays: shadow state is not published.
	publish bool
}

type acctState struct {
	acc   *store.Account
	c     *compiled
	dirty bool
	// timer is when this batch armed the account's timer (zero: not yet),
	// so that its next events skip arming it at the same time again.
	timer time.Time
}

func (a *App) newBatch(tx *pstore.Tx, ns store.Namespace, o *only) *batch {
	return &batch{a: a, tx: tx, ns: ns, only: o, active: map[string][]store.ActiveJourney{}, accounts: map[string]*acctState{}, publish: o == nil}
}

func (b *batch) journeys(ws string) ([]store.ActiveJourney, error) {
	if b.only != nil {
		if ws != b.only.ws {
			return nil, nil
		}
		return []store.ActiveJourney{{ID: b.only.journey, Version: b.only.version}}, nil
	}
	if js, ok := b.active[ws]; ok {
		return js, nil
	}
	js, err := b.a.installDefault(b.tx, ws)
	if err != nil {
		return nil, fmt.Errorf("journeys of workspace %q: %w", ws, err)
	}
	b.active[ws] = js
	return js, nil
}

func (b *batch) load(ws, jid, acct string, c *compiled) (*acctState, error) {
	key := string(store.Key(ws, jid, acct))
	if st, ok := b.accounts[key]; ok {
		return st, nil
	}
	var acc *store.Account
	var err error
	if b.ns == store.Live {
		if ce := b.a.cache.take(key); ce != nil {
			aj, aggs := b.ns.RawAccount(b.tx, ws, jid, acct)
			if bytes.Equal(aj, ce.aj) && bytes.Equal(aggs, ce.aggs) {
				acc = ce.acc
			}
		}
	}
	if acc == nil {
		acc, err = b.ns.GetAccount(b.tx, ws, jid, acct)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		acc = &store.Account{
			Journey: &stagesv1.AccountJourney{Workspace: ws, AccountId: acct, JourneyId: jid, Version: c.j.Def.GetVersion()},
			Aggs:    account.New(ws, acct),
		}
	case err != nil:
		return nil, err
	}
	st := &acctState{acc: acc, c: c}
	b.accounts[key] = st
	b.order = append(b.order, st)
	return st, nil
}

func (b *batch) event(ev *ingestionv1.Event, cause string) error {
	ws, acct := ev.GetWorkspace(), ev.GetAccountId()
	if ws == "" || acct == "" {
		return nil // unattributed events cannot move an account
	}
	js, err := b.journeys(ws)
	if err != nil {
		return err
	}
	at := account.EventTime(ev)
	for _, aj := range js {
		c, err := b.a.compiled(b.tx, ws, aj.ID, aj.Version)
		if err != nil {
			return err
		}
		st, err := b.load(ws, aj.ID, acct, c)
		if err != nil {
			return err
		}
		st.c = c
		st.acc.Aggs.Apply(ev, &c.j.Config)
		if st.acc.Journey.GetStage() == "" && !journey.Behavioural(ev) {
			syncLifecycle(st)
			st.dirty = true
			continue
		}
		now := at
		if entered := st.acc.Journey.GetEnteredAt(); entered != nil && now.Before(entered.AsTime()) {
			// A late event cannot move an account before its last move.
			now = entered.AsTime()
		}
		if err := b.evaluate(st, now, cause, ev.GetMessageId()); err != nil {
			return err
		}
	}
	return nil
}

// syncLifecycle derives the account's status from its aggregates and keeps
// it on the journey state (for lists and funnels, which read no
// aggregates). It returns the status.
func syncLifecycle(st *acctState) account.Status {
	lc := st.acc.Aggs.Lifecycle()
	if !sameLifecycle(st.acc.Journey.GetLifecycle(), lc) {
		st.acc.Journey.Lifecycle = lc.Proto()
	}
	return lc.Status
}

// sameLifecycle reports whether p is what l.Proto() returns, so that the
// status kept on the journey state is only rebuilt when it changed.
func sameLifecycle(p *commonv1.Lifecycle, l account.Lifecycle) bool {
	if p == nil || p.GetStatus() != l.Status.Proto() || !sameUnix(p.GetSince(), l.Since) || len(p.GetHistory()) != len(l.History) ||
		len(p.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	for i, c := range l.History {
		h := p.GetHistory()[i]
		if h.GetStatus() != c.Status.Proto() || !sameUnix(h.GetAt(), c.At) || h.GetEvent() != c.Event || len(h.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
	}
	return true
}

// sameUnix reports whether ts is what account.Lifecycle.Proto makes of
// sec: nil for 0, else sec whole seconds.
func sameUnix(ts *timestamppb.Timestamp, sec int64) bool {
	if sec == 0 {
		return ts == nil
	}
	return ts != nil && ts.GetSeconds() == sec && ts.GetNanos() == 0 && len(ts.ProtoReflect().GetUnknown()) == 0
}

// statusOf is the status kept on an account's journey state.
func statusOf(aj *stagesv1.AccountJourney) account.Status {
	return account.StatusOf(aj.GetLifecycle().GetStatus())
}

// evaluate runs the journey for one account at now and records the outcome.
// Churn is terminal in every journey until a win-back: a churned account
// leaves its stage (churnOut) and is not evaluated; a won-back account in
// no stage is placed again with cause "win_back".
func (b *batch) evaluate(st *acctState, now time.Time, cause, trigger string) error {
	aj := st.acc.Journey
	j := st.c.j
	was := statusOf(aj)
	status := syncLifecycle(st)
	if status == account.StatusChurned {
		st.dirty = true
		if aj.GetStage() == "" {
			return nil
		}
		st.timer = time.Time{} // churnOut clears it
		return b.churnOut(aj, now, trigger)
	}
	if aj.GetStage() == "" && (status == account.StatusWonBack || was == account.StatusChurned) {
		cause = journey.CauseWinBack
	}
	if aj.GetStage() != "" && j.Stage(aj.GetStage()) == nil {
		// A new version dropped the account's stage: end the stay and its
		// signals, then place the account afresh.
		if err := b.retire(aj, now); err != nil {
			return err
		}
	}
	state := journey.StateOf(aj)
	ev := st.c.pool.Get().(*journey.Evaluator)
	out := ev.Evaluate(st.acc.Aggs, state, now, cause)
	st.c.pool.Put(ev)
	st.dirty = true
	aj.Version = j.Def.GetVersion()
	journey.SyncTraits(aj, st.acc.Aggs)
	ws, acct := aj.GetWorkspace(), aj.GetAccountId()
	var ts *timestamppb.Timestamp
	if len(out.Moves) > 0 || len(out.Signals) > 0 {
		ts = timestamppb.New(now)
	}

	for _, m := range out.Moves {
		if aj.Traits["cohort"] == "" {
			aj.Traits["cohort"] = now.UTC().Format("2006-01")
		}
		if m.From != "" {
			outcome := store.OutcomeConverted
			if m.Cause == journey.CauseRegression {
				outcome = store.OutcomeRegressed
			}
			if err := b.closeVisit(aj, outcome, now); err != nil {
				return err
			}
		}
		tr := &stagesv1.Transition{
			Workspace: ws, AccountId: acct, JourneyId: aj.GetJourneyId(), Version: aj.GetVersion(),
			FromStage: m.From, ToStage: m.To, At: ts, TriggerMessageId: trigger, Cause: m.Cause, Criteria: m.Criteria,
		}
		journey.AppendHistory(aj, tr)
		aj.Stage, aj.EnteredAt = m.To, ts
		v := &store.Visit{Stage: m.To, Account: acct, Entered: now, Cohort: aj.Traits["cohort"], Segment: aj.Traits["segment"], Plan: aj.Traits["plan"], Placed: m.From == ""}
		if err := b.ns.PutVisit(b.tx, ws, aj.GetJourneyId(), v); err != nil {
			return err
		}
		if err := b.emit(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: tr}}, ws, acct); err != nil {
			return err
		}
	}
	for _, sc := range out.Signals {
		sig, err := b.signal(aj, sc, ts)
		if err != nil {
			return err
		}
		if err := b.emit(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Signal{Signal: sig}}, ws, acct); err != nil {
			return err
		}
	}
	if b.publish && (len(out.Moves) > 0 || len(out.Signals) > 0) {
		moves, sigs := out.Moves, out.Signals
		// Counted on commit: a group-committed Apply may run more than once.
		b.tx.OnCommit(func() {
			for _, m := range moves {
				b.a.transitions.WithLabelValues(m.Cause).Inc()
			}
			for _, sc := range sigs {
				state := "closed"
				if sc.Open {
					state = "open"
				}
				b.a.signals.WithLabelValues(state).Inc()
			}
		})
	}
	aj.Stage = out.State.Stage
	if e := out.State.EnteredAt; !e.IsZero() && !sameTime(aj.GetEnteredAt(), e) {
		aj.EnteredAt = timestamppb.New(e)
	}
	if b.ns == store.Live && !out.NextCheck.IsZero() && !out.NextCheck.Equal(st.timer) {
		if err := b.ns.SetTimer(b.tx, ws, aj.GetJourneyId(), acct, out.NextCheck, b.partition(ws, acct)); err != nil {
			return err
		}
		st.timer = out.NextCheck
	}
	return nil
}

// sameTime reports whether ts is t, to the nanosecond.
func sameTime(ts *timestamppb.Timestamp, t time.Time) bool {
	return ts != nil && ts.GetSeconds() == t.Unix() && ts.GetNanos() == int32(t.Nanosecond()) && len(ts.ProtoReflect().GetUnknown()) == 0
}

// retire closes the visit and the open signals of a stage that no longer
// exists in the account's journey version.
func (b *batch) retire(aj *stagesv1.AccountJourney, now time.Time) error {
	if err := b.closeVisit(aj, store.OutcomeRemoved, now); err != nil {
		return err
	}
	if err := b.closeSignals(aj, now, ""); err != nil {
		return err
	}
	aj.Stage, aj.EnteredAt = "", nil
	return nil
}

// closeSignals closes every open signal of the account, recording reason
// (if any) as the signal's closed_reason attribute.
func (b *batch) closeSignals(aj *stagesv1.AccountJourney, now time.Time, reason string) error {
	ts := timestamppb.New(now)
	for _, open := range append([]*commonv1.Signal(nil), aj.GetOpenSignals()...) {
		sc := journey.SignalChange{Stage: open.GetAttributes()["stage"], Name: open.GetAttributes()["criterion"], ClosedReason: reason}
		sig, err := b.signal(aj, sc, ts)
		if err != nil {
			return err
		}
		if err := b.emit(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Signal{Signal: sig}}, aj.GetWorkspace(), aj.GetAccountId()); err != nil {
			return err
		}
		if b.publish {
			b.tx.OnCommit(func() { b.a.signals.WithLabelValues("closed").Inc() })
		}
	}
	return nil
}

// churnOut takes a churned account out of its stage at now: the stay ends
// with outcome churned, its open signals close (closed_reason "churned"),
// its timer is cleared, and a transition to no stage (cause "churn") is
// recorded and published.
func (b *batch) churnOut(aj *stagesv1.AccountJourney, now time.Time, trigger string) error {
	if entered := aj.GetEnteredAt(); entered != nil && now.Before(entered.AsTime()) {
		now = entered.AsTime()
	}
	if err := b.closeVisit(aj, store.OutcomeChurned, now); err != nil {
		return err
	}
	if err := b.closeSignals(aj, now, journey.ClosedChurned); err != nil {
		return err
	}
	ws, acct := aj.GetWorkspace(), aj.GetAccountId()
	tr := &stagesv1.Transition{
		Workspace: ws, AccountId: acct, JourneyId: aj.GetJourneyId(), Version: aj.GetVersion(),
		FromStage: aj.GetStage(), At: timestamppb.New(now), TriggerMessageId: trigger, Cause: journey.CauseChurn,
	}
	journey.AppendHistory(aj, tr)
	aj.Stage, aj.EnteredAt = "", nil
	if b.ns == store.Live {
		if err := b.ns.ClearTimer(b.tx, ws, aj.GetJourneyId(), acct); err != nil {
			return err
		}
	}
	if b.publish {
		b.tx.OnCommit(func() { b.a.transitions.WithLabelValues(journey.CauseChurn).Inc() })
	}
	return b.emit(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: tr}}, ws, acct)
}

func (b *batch) partition(ws, acct string) uint32 {
	return stream.Partition(ws, acct, b.a.log.Partitions())
}

func (b *batch) closeVisit(aj *stagesv1.AccountJourney, outcome store.Outcome, now time.Time) error {
	if aj.GetEnteredAt() == nil {
		return nil
	}
	v, err := b.ns.GetVisit(b.tx, aj.GetWorkspace(), aj.GetJourneyId(), aj.GetAccountId(), aj.GetStage(), aj.GetEnteredAt().AsTime())
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	v.Left, v.Outcome = now, outcome
	return b.ns.PutVisit(b.tx, aj.GetWorkspace(), aj.GetJourneyId(), v)
}

// signal records an opened or closed drop-off signal on the account.
func (b *batch) signal(aj *stagesv1.AccountJourney, sc journey.SignalChange, at *timestamppb.Timestamp) (*commonv1.Signal, error) {
	ws, acct := aj.GetWorkspace(), aj.GetAccountId()
	id := acct + ":dropoff:" + aj.GetJourneyId() + ":" + sc.Reason()
	var sig *commonv1.Signal
	keep := aj.OpenSignals[:0]
	for _, s := range aj.GetOpenSignals() {
		if s.GetSignalId() == id {
			sig = s
			continue
		}
		keep = append(keep, s)
	}
	aj.OpenSignals = keep
	if sc.Open {
		msg := sc.Description
		if msg == "" {
			msg = "drop-off criterion " + sc.Name + " holds in stage " + sc.Stage
		}
		sig = &commonv1.Signal{
			Workspace: ws, AccountId: acct, SignalId: id, Kind: commonv1.SignalKind_SIGNAL_KIND_DROPOFF,
			Reason: sc.Reason(), Message: msg, State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: at,
			Attributes: map[string]string{"journey": aj.GetJourneyId(), "stage": sc.Stage, "criterion": sc.Name},
		}
		aj.OpenSignals = append(aj.OpenSignals, sig)
		if aj.GetEnteredAt() != nil {
			v, err := b.ns.GetVisit(b.tx, ws, aj.GetJourneyId(), acct, sc.Stage, aj.GetEnteredAt().AsTime())
			if err == nil && (!v.Dropoff || !v.DropoffOpen) {
				v.Dropoff, v.DropoffOpen = true, true
				if err := b.ns.PutVisit(b.tx, ws, aj.GetJourneyId(), v); err != nil {
					return nil, err
				}
			}
		}
	} else {
		if err := b.dropoffClosed(aj, sc.Stage); err != nil {
			return nil, err
		}
		if sig == nil {
			sig = &commonv1.Signal{
				Workspace: ws, AccountId: acct, SignalId: id, Kind: commonv1.SignalKind_SIGNAL_KIND_DROPOFF, Reason: sc.Reason(),
				Attributes: map[string]string{"journey": aj.GetJourneyId(), "stage": sc.Stage, "criterion": sc.Name},
			}
		}
		sig = proto.Clone(sig).(*commonv1.Signal)
		sig.State, sig.ClosedAt = commonv1.SignalState_SIGNAL_STATE_CLOSED, at
		if sc.ClosedReason != "" {
			if sig.Attributes == nil {
				sig.Attributes = map[string]string{}
			}
			sig.Attributes["closed_reason"] = sc.ClosedReason
		}
	}
	if err := b.ns.PutSignal(b.tx, sig); err != nil {
		return nil, err
	}
	return sig, nil
}

// dropoffClosed clears the current stay's open drop-off mark once no
// drop-off signal of stage is open any more, so the funnel stops counting
// an account that recovered as dropping off.
func (b *batch) dropoffClosed(aj *stagesv1.AccountJourney, stage string) error {
	if aj.GetEnteredAt() == nil || stage != aj.GetStage() {
		return nil
	}
	for _, s := range aj.GetOpenSignals() {
		if s.GetKind() == commonv1.SignalKind_SIGNAL_KIND_DROPOFF && s.GetAttributes()["stage"] == stage {
			return nil
		}
	}
	v, err := b.ns.GetVisit(b.tx, aj.GetWorkspace(), aj.GetJourneyId(), aj.GetAccountId(), stage, aj.GetEnteredAt().AsTime())
	if errors.Is(err, store.ErrNotFound) || (err == nil && !v.DropoffOpen) {
		return nil
	}
	if err != nil {
		return err
	}
	v.DropoffOpen = false
	return b.ns.PutVisit(b.tx, aj.GetWorkspace(), aj.GetJourneyId(), v)
}

func (b *batch) emit(rec *stagesv1.LogRecord, ws, acct string) error {
	if !b.publish {
		return nil
	}
	if tr := rec.GetTransition(); tr != nil {
		// Consumers read "the account's stage" from the default journey's
		// changes only, and cannot tell which journey that is (ADR 0023).
		active, err := b.journeys(ws)
		if err != nil {
			return err
		}
		tr.DefaultJourney = tr.GetJourneyId() == defaultOf(active)
	}
	data, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode stages record: %w", err)
	}
	if _, err := b.a.log.AppendTx(b.tx, b.partition(ws, acct), data); err != nil {
		return fmt.Errorf("append stages record: %w", err)
	}
	return nil
}

func (b *batch) flush() error {
	for _, st := range b.order {
		if !st.dirty {
			continue
		}
		aj, aggs, err := b.ns.PutAccountRaw(b.tx, st.acc)
		if err != nil {
			return err
		}
		if b.ns == store.Live {
			j := st.acc.Journey
			key := string(store.Key(j.GetWorkspace(), j.GetJourneyId(), j.GetAccountId()))
			entry := &cacheEntry{aj: aj, aggs: aggs, acc: st.acc}
			b.tx.OnCommit(func() { b.a.cache.put(key, entry) })
		}
	}
	b.accounts = map[string]*acctState{}
	b.order = b.order[:0]
	return nil
}

func (b *batch) tombstone(t *commonv1.Tombstone) error {
	ws := t.GetWorkspace()
	keys, err := b.ns.AggKeys(b.tx, ws)
	if err != nil {
		return err
	}
	switch {
	case t.GetAccountId() != "":
		for _, k := range keys {
			if k[1] == t.GetAccountId() {
				if err := b.ns.DeleteAccount(b.tx, ws, k[0], k[1]); err != nil {
					return err
				}
			}
		}
		if err := b.ns.DeleteSignals(b.tx, ws, t.GetAccountId()); err != nil {
			return err
		}
	case t.GetUserId() != "":
		for _, k := range keys {
			acc, err := b.ns.GetAccount(b.tx, ws, k[0], k[1])
			if err != nil {
				return err
			}
			if _, ok := acc.Aggs.Users[t.GetUserId()]; !ok {
				continue
			}
			acc.Aggs.ForgetUser(t.GetUserId())
			if err := b.ns.PutAccount(b.tx, acc); err != nil {
				return err
			}
		}
	}
	return b.emit(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Tombstone{Tombstone: t}}, ws, t.GetAccountId())
}

// replay applies ingestion records to the shadow namespace ns for one
// journey version of one workspace. Nothing is published and no timer is
// armed: shadow state only becomes live through activate.
func (a *App) replay(tx *pstore.Tx, ns store.Namespace, ws, jid string, version uint32, recs []*ingestionv1.LogRecord) error {
	b := a.newBatch(tx, ns, &only{ws: ws, journey: jid, version: version})
	for _, r := range recs {
		switch k := r.GetKind().(type) {
		case *ingestionv1.LogRecord_Event:
			if err := b.event(k.Event, journey.CauseReplay); err != nil {
				return err
			}
		case *ingestionv1.LogRecord_Tombstone:
			if k.Tombstone.GetWorkspace() != ws {
				continue
			}
			if err := b.flush(); err != nil {
				return err
			}
			if err := b.tombstone(k.Tombstone); err != nil {
				return err
			}
		}
	}
	return b.flush()
}

// evaluateAll re-evaluates every placed account of a journey in ns at now,
// so that time-driven moves a replay could not see (it fires no timers) are
// applied. It returns the number of accounts per stage.
func (a *App) evaluateAll(tx *pstore.Tx, ns store.Namespace, ws, jid string, version uint32, now time.Time, cause string) (map[string]int64, error) {
	c, err := a.compiled(tx, ws, jid, version)
	if err != nil {
		return nil, err
	}
	var o *only
	if ns != store.Live {
		o = &only{ws: ws, journey: jid, version: version}
	}
	b := a.newBatch(tx, ns, o)
	var ids []string
	if err := ns.Accounts(tx, ws, jid, nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
		ids = append(ids, aj.GetAccountId())
		return true, nil
	}); err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for _, id := range ids {
		st, err := b.load(ws, jid, id, c)
		if err != nil {
			return nil, err
		}
		st.c = c
		if st.acc.Journey.GetStage() != "" {
			t := now
			if entered := st.acc.Journey.GetEnteredAt(); entered != nil && t.Before(entered.AsTime()) {
				t = entered.AsTime()
			}
			if err := b.evaluate(st, t, cause, ""); err != nil {
				return nil, err
			}
			counts[st.acc.Journey.GetStage()]++
		}
	}
	return counts, b.flush()
}

// activate makes a replayed version live: the shadow state of the journey
// replaces the live state, the version becomes active, a transition (cause
// "replay") is published for every account whose stage changed, and live
// timers are re-armed by evaluating every account at now.
func (a *App) activate(tx *pstore.Tx, shadow store.Namespace, ws, jid string, version uint32, now time.Time) error {
	before := map[string]string{}
	if err := store.Live.Accounts(tx, ws, jid, nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
		before[aj.GetAccountId()] = aj.GetStage()
		return true, nil
	}); err != nil {
		return err
	}
	for acct := range before {
		if err := store.Live.ClearTimer(tx, ws, jid, acct); err != nil {
			return err
		}
	}
	if _, err := shadow.CopyJourney(tx, store.Live, ws, jid); err != nil {
		return err
	}
	if err := store.SetActive(tx, ws, jid, version); err != nil {
		return err
	}
	b := a.newBatch(tx, store.Live, nil)
	err := store.Live.Accounts(tx, ws, jid, nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
		churned := statusOf(aj) == account.StatusChurned
		if old := before[aj.GetAccountId()]; old != aj.GetStage() && (aj.GetStage() != "" || churned) {
			cause := journey.CauseReplay
			if aj.GetStage() == "" {
				cause = journey.CauseChurn // the replay found it churned
			}
			tr := &stagesv1.Transition{
				Workspace: ws, AccountId: aj.GetAccountId(), JourneyId: jid, Version: version,
				FromStage: old, ToStage: aj.GetStage(), At: timestamppb.New(now), Cause: cause,
			}
			if err := b.emit(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: tr}}, ws, aj.GetAccountId()); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if _, err := a.evaluateAll(tx, store.Live, ws, jid, version, now, journey.CauseReplay); err != nil {
		return err
	}
	a.poke()
	return nil
}
