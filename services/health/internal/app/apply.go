package app

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// batch caches decoded accounts for one transaction and writes each once.
type batch struct {
	a     *App
	tx    *kv.Tx
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

func (a *App) newBatch(tx *kv.Tx) *batch {
	return &batch{a: a, tx: tx, accts: map[[2]string]*state{}}
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
	if _, err := b.a.log.AppendTx(b.tx, stream.Partition(ws, acct, b.a.log.Partitions()), data); err != nil {
		return fmt.Errorf("append to health log: %w", err)
	}
	return nil
}

// ApplyIngestion folds a batch of ingestion log records into the store.
// Events without an account are skipped; tombstones forget the subject and
// are forwarded on the health log.
func (a *App) ApplyIngestion(tx *kv.Tx, _ uint32, recs []*ingestionv1.LogRecord) error {
	b := a.newBatch(tx)
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
func (a *App) ApplyStages(tx *kv.Tx, _ uint32, recs []*stagesv1.LogRecord) error {
	b := a.newBatch(tx)
	for _, r := range recs {
		switch k := r.GetKind().(type) {
		case *stagesv1.LogRecord_Transition:
			t := k.Transition
			// An empty to_stage with a from_stage is an account leaving its
			// journey (cause "churn"): it is then in no stage, as stages says.
			if t.GetWorkspace() == "" || t.GetAccountId() == "" || (t.GetToStage() == "" && t.GetFromStage() == "") {
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
	defer func() { b.a.evalSeconds.Observe(time.Since(start).Seconds()) }()
	cm, err := b.a.Model(b.tx, st.acc.Agg.Workspace)
	if err != nil {
		return err
	}
	at = asOf(st.acc, at)
	priors := func() (model.Priors, error) {
		return priorsIn(b.tx, st.acc.Agg.Workspace, st.acc.Agg.AccountID, at)
	}
	act := b.a.acts.Get().(*measure.Activation)
	out, err := compute(st, cm, at, priors, act)
	act.Reset(measure.Input{}) // keep no account alive in the pool
	b.a.acts.Put(act)
	if err != nil {
		return err
	}
	return b.commit(st, out)
}

// commit writes an outcome, publishes its records and re-arms the daily
// timer (removes it for an account that is not scored).
func (b *batch) commit(st *state, out *outcome) error {
	if err := store.PutEncoded(b.tx, &out.enc); err != nil {
		return err
	}
	p := stream.Partition(out.enc.Workspace, out.enc.Account, b.a.log.Partitions())
	for _, r := range out.records {
		if _, err := b.a.log.AppendTx(b.tx, p, r); err != nil {
			return fmt.Errorf("append to health log: %w", err)
		}
	}
	for _, s := range out.enc.Signals {
		b.a.countSignal(s.Signal)
	}
	st.health = out.health
	if !out.arm {
		return store.DisarmTimer(b.tx, out.enc.Workspace, out.enc.Account)
	}
	return store.ArmTimer(b.tx, out.enc.Workspace, out.enc.Account, b.a.dueAt(out.next))
}
