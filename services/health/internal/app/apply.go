package app

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// batch caches decoded accounts for one transaction and writes each once:
// an account's aggregate, meta, health, list row, timer and snapshot are
// written when the batch ends (flush), from its last evaluation, however many
// of the batch's events it had. What an evaluation publishes (log records,
// signals) is written at once, in order.
type batch struct {
	a     *App
	tx    *kv.Tx
	accts map[[2]string]*state
	order [][2]string
	// wss holds each workspace's writer and active model for the batch.
	wss map[string]*wsBatch
}

// wsBatch is what a batch resolves once per workspace.
type wsBatch struct {
	w  *store.Writer
	cm *model.Compiled
}

type state struct {
	acc    *store.Account
	health *healthv1.AccountHealth
	// aggDirty is set when events changed the aggregate, which then must be
	// written back; evaluations alone only touch the small meta record.
	aggDirty bool
	// stored holds the bytes acc and health were decoded from, copied out
	// of the transaction (the account cache's), when known.
	stored *store.Stored

	// The latest evaluation's state, to be written by flush when evaluated:
	// the list row (nil: out of the lists) and the timer (armed: due at).
	evaluated bool
	row       *healthv1.AccountRow
	arm       bool
	due       time.Time
	// snap is a snapshot to write for day snapDay (account.DayOf), the
	// evaluation day of the latest evaluation that scored the account.
	// Only a later day's evaluation reads it (as a trend prior), so it is
	// written before one runs.
	snap    []byte
	snapDay int32
	snapKey string
	// priors caches the trend inputs of day priorsDay (account.DayOf): they
	// read the snapshots 7 and 30 days before it, which the batch's
	// evaluations, all on that day or later, do not write.
	priors    model.Priors
	priorsDay int32
	hasPriors bool
}

func (a *App) newBatch(tx *kv.Tx) *batch {
	return &batch{a: a, tx: tx, accts: map[[2]string]*state{}, wss: map[string]*wsBatch{}}
}

// workspace returns ws's writer and active model for the batch.
func (b *batch) workspace(ws string) (*wsBatch, error) {
	if wb, ok := b.wss[ws]; ok {
		return wb, nil
	}
	cm, err := b.a.Model(b.tx, ws)
	if err != nil {
		return nil, err
	}
	wb := &wsBatch{w: store.NewWriter(b.tx, ws), cm: cm}
	b.wss[ws] = wb
	return wb, nil
}

func (b *batch) get(ws, acct string, create bool) (*state, error) {
	k := [2]string{ws, acct}
	if st, ok := b.accts[k]; ok {
		return st, nil
	}
	wb, err := b.workspace(ws)
	if err != nil {
		return nil, err
	}
	raw, err := wb.w.Stored(acct)
	if err != nil {
		return nil, err
	}
	st := &state{}
	if c, _ := b.a.cache.Take(k); c != nil && c.stored.Equal(&raw) {
		// The account as this consumer last wrote it, still current.
		st.acc, st.health, st.stored = c.acc, c.health, &c.stored
	} else {
		switch {
		case raw.Agg == nil:
			if !create {
				return nil, nil
			}
			st.acc, st.aggDirty = &store.Account{Agg: account.New(ws, acct)}, true
		default:
			if st.acc, err = store.DecodeAccount(raw.Agg, raw.Meta); err != nil {
				return nil, fmt.Errorf("get account %q: %w", acct, err)
			}
		}
		if raw.Health != nil {
			if st.health, err = store.UnmarshalHealth(raw.Health); err != nil {
				return nil, fmt.Errorf("get health of %q: unmarshal: %w", acct, err)
			}
		}
	}
	b.accts[k] = st
	b.order = append(b.order, k)
	return st, nil
}

func (b *batch) forget(ws, acct string) {
	delete(b.accts, [2]string{ws, acct})
}

// flush writes every touched account once. At the end of a batch (last),
// the accounts go to the account cache with the bytes written.
func (b *batch) flush(last bool) error {
	for _, k := range b.order {
		st, ok := b.accts[k]
		if !ok {
			continue
		}
		stored, err := b.write(b.wss[k[0]].w, st)
		if err != nil {
			return err
		}
		if last && stored != nil {
			b.a.cache.Put(k, &cachedAccount{stored: *stored, acc: st.acc, health: st.health})
		}
	}
	return nil
}

// write stores what st's events and evaluations changed and returns the
// account's stored bytes, nil when some are not known.
func (b *batch) write(w *store.Writer, st *state) (*store.Stored, error) {
	acct := st.acc.Agg.AccountID
	if err := b.writeSnapshot(w, st); err != nil {
		return nil, err
	}
	var out store.Stored
	known := st.stored != nil
	if known {
		out = *st.stored
	}
	if st.evaluated {
		o := outcome{health: st.health, row: st.row}
		if err := o.encode(); err != nil {
			return nil, fmt.Errorf("%q: %w", acct, err)
		}
		if err := w.PutHealth(acct, o.enc.Health); err != nil {
			return nil, err
		}
		if err := w.PutRow(acct, o.enc.Row); err != nil {
			return nil, err
		}
		var err error
		if st.arm {
			err = w.ArmTimer(acct, st.due)
		} else {
			err = w.DisarmTimer(acct)
		}
		if err != nil {
			return nil, err
		}
		out.Health = o.enc.Health
		st.evaluated = false
	} else if !known {
		return nil, b.writeAccount(w, st, nil)
	}
	if err := b.writeAccount(w, st, &out); err != nil {
		return nil, err
	}
	if !known && out.Agg == nil {
		return nil, nil
	}
	st.stored = &out
	return &out, nil
}

// writeAccount stores st's meta, and its aggregate when events changed it;
// out, when not nil, receives the bytes written.
func (b *batch) writeAccount(w *store.Writer, st *state, out *store.Stored) error {
	acct := st.acc.Agg.AccountID
	if st.aggDirty {
		agg := st.acc.Agg.Marshal()
		if err := w.PutAggregate(acct, agg); err != nil {
			return err
		}
		st.aggDirty = false
		if out != nil {
			out.Agg = agg
		}
	}
	meta := store.EncodeMeta(&st.acc.Meta)
	if out != nil {
		out.Meta = meta
	}
	return w.PutMeta(acct, meta)
}

// writeSnapshot writes st's pending snapshot, if any.
func (b *batch) writeSnapshot(w *store.Writer, st *state) error {
	if st.snap == nil {
		return nil
	}
	if err := w.PutSnapshot(st.acc.Agg.AccountID, st.snapKey, st.snap); err != nil {
		return err
	}
	st.snap = nil
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
	return b.flush(true)
}

// ApplyStages records each account's current stage and rescores it, so
// measures may use stage and days_in_stage. The account's stage is its
// stage in the workspace's default journey: other journeys' stage changes
// are skipped (pkg/domain/journey, ADR 0023). Stage signals are not
// health's business; stage tombstones are applied but not forwarded
// (ingestion's are).
func (a *App) ApplyStages(tx *kv.Tx, _ uint32, recs []*stagesv1.LogRecord) error {
	b := a.newBatch(tx)
	for _, r := range recs {
		switch k := r.GetKind().(type) {
		case *stagesv1.LogRecord_Transition:
			t := k.Transition
			// An empty to_stage with a from_stage is an account leaving its
			// journey (cause "churn"): it is then in no stage, as stages says.
			if t.GetWorkspace() == "" || t.GetAccountId() == "" || (t.GetToStage() == "" && t.GetFromStage() == "") || !journey.IsDefault(t) {
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
	return b.flush(true)
}

func (b *batch) tombstone(t *commonv1.Tombstone, forward bool) error {
	ws := t.GetWorkspace()
	if ws == "" {
		return nil
	}
	switch {
	case t.GetAccountId() != "":
		if err := b.flush(false); err != nil {
			return err
		}
		b.forget(ws, t.GetAccountId())
		if err := store.DeleteAccount(b.tx, ws, t.GetAccountId()); err != nil {
			return fmt.Errorf("forget account %q: %w", t.GetAccountId(), err)
		}
	case t.GetUserId() != "":
		if err := b.flush(false); err != nil {
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
	ws, acct := st.acc.Agg.Workspace, st.acc.Agg.AccountID
	wb, err := b.workspace(ws)
	if err != nil {
		return err
	}
	at = asOf(st.acc, at)
	day := account.DayOf(at)
	if st.snap != nil && st.snapDay != day {
		// A later day's trend may read it.
		if err := b.writeSnapshot(wb.w, st); err != nil {
			return err
		}
	}
	priors := func() (model.Priors, error) {
		if st.hasPriors && st.priorsDay == day {
			return st.priors, nil
		}
		p, err := priorsFrom(func(day string) (float64, error) { return wb.w.SnapshotScoreAt(acct, day) }, at)
		if err != nil {
			return p, err
		}
		st.priors, st.priorsDay, st.hasPriors = p, day, true
		return p, nil
	}
	act := b.a.acts.Get().(*measure.Activation)
	out, err := compute(st, wb.cm, at, priors, act)
	act.Reset(measure.Input{}) // keep no account alive in the pool
	b.a.acts.Put(act)
	if err != nil {
		return err
	}
	return b.commit(wb.w, st, out, day)
}

// commit writes an evaluation's signals, publishes its records and keeps
// the rest (health, list row, timer, snapshot of day) for flush.
func (b *batch) commit(w *store.Writer, st *state, out *outcome, day int32) error {
	for _, s := range out.enc.Signals {
		if err := w.PutSignal(s.Signal, s.Data); err != nil {
			return err
		}
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
	if out.enc.Snapshot != nil {
		if st.snap != nil && st.snapDay != day {
			if err := b.writeSnapshot(w, st); err != nil {
				return err
			}
		}
		st.snap, st.snapDay, st.snapKey = out.enc.Snapshot, day, out.enc.Day
	}
	st.health, st.row, st.evaluated, st.arm = out.health, out.row, true, out.arm
	if out.arm {
		st.due = b.a.dueAt(out.next)
	}
	return nil
}
