package app

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/gc"
	"github.com/cairn-dev/cairn/pkg/hours"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/sla"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// FireDue fires every timer due at the clock's current time, in batches of
// one transaction each, and returns how many fired. Timers that fell due
// while the service was down fire here on the first call after a restart.
//
// A backlog is worked through as a pipeline: while one batch commits, the
// next is prepared in a read transaction on another goroutine (timers read,
// assignments decoded, clocks advanced, records encoded). The write
// transaction then only checks that what the plan was made from is still
// current (the timer pending, the assignment's and owner's stored bytes and
// the config version unchanged) and writes; anything else, and every breach
// that escalates, fires through fireTx inside the transaction as before.
// Timers the pipeline cannot see (armed while it ran and already due) fire
// in the sequential passes that follow it.
func (s *Service) FireDue(ctx context.Context) (int, error) {
	total, err := s.firePipelined(ctx)
	if err != nil {
		return total, err
	}
	for ctx.Err() == nil {
		now := s.fireHorizon()
		// The loop wakes after every commit that may have armed a timer;
		// a read transaction decides whether a write (and its fsync, in
		// the way of Qualify's group commits) is needed at all.
		due, err := s.anyDue(now)
		if err != nil || !due {
			return total, err
		}
		n, err := s.fireBatch(now)
		if err != nil {
			return total, err
		}
		total += n
		// A fired warning may arm a timer that is already due (after
		// downtime), so keep going until a pass finds nothing.
		if n == 0 {
			break
		}
	}
	return total, nil
}

// anyDue reports whether a timer is due at now.
func (s *Service) anyDue(now time.Time) (bool, error) {
	var due bool
	err := s.db.View(func(tx *pstore.Tx) error {
		next, ok := store.NextTimer(tx)
		due = ok && !next.After(now)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read next timer: %w", err)
	}
	return due, nil
}

// fireBatch fires up to one batch of timers due at now in one transaction,
// entirely inside it.
func (s *Service) fireBatch(now time.Time) (int, error) {
	var (
		n        int
		breached []routingv1.HandoffType
	)
	// Update runs its function once: n and breached need no reset.
	err := s.db.Update(func(btx *pstore.Tx) error {
		due, err := store.DueTimers(btx, now, s.batch)
		if err != nil {
			return err
		}
		b := newFireBatch()
		for _, tm := range due {
			tx := b.tx(btx, tm.Workspace)
			t, err := s.fireTx(tx, tm, now, b)
			if err != nil {
				return fmt.Errorf("fire %s timer of %s/%s: %w", tm.Kind, tm.Workspace, tm.AssignmentID, err)
			}
			if t != 0 {
				breached = append(breached, t)
			}
		}
		if err := b.flush(); err != nil {
			return err
		}
		n = len(due)
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.afterBatch(n, breached)
	return n, nil
}

func (s *Service) afterBatch(n int, breached []routingv1.HandoffType) {
	for _, t := range breached {
		s.breaches.WithLabelValues(rules.TypeName(t)).Inc()
	}
	s.fired += n
	if s.AfterFire != nil && n > 0 {
		s.AfterFire(s.fired)
	}
}

// fireBatch caches, for one transaction of fired timers, the calendars by
// workspace and owner, the SLA policies by workspace and name, and one
// store.Tx per workspace, which keeps its bucket handles and defers the
// owners' load counters to one write each at the end.
type fireBatch struct {
	cals     map[string]*hours.Calendar
	policies map[string]*routingv1.SlaPolicy
	txs      map[string]*store.Tx
}

func newFireBatch() *fireBatch {
	return &fireBatch{cals: map[string]*hours.Calendar{}, policies: map[string]*routingv1.SlaPolicy{}, txs: map[string]*store.Tx{}}
}

func (b *fireBatch) tx(btx *pstore.Tx, ws string) *store.Tx {
	tx, ok := b.txs[ws]
	if !ok {
		tx = store.In(btx, ws)
		tx.DeferLoad()
		b.txs[ws] = tx
	}
	return tx
}

func (b *fireBatch) flush() error {
	for ws, tx := range b.txs {
		if err := tx.FlushLoad(); err != nil {
			return fmt.Errorf("write owner load of %s: %w", ws, err)
		}
	}
	return nil
}

// firePlan is one timer prepared outside the write transaction.
type firePlan struct {
	tm store.Timer
	// fast is set when the plan can be written as is, provided old (the
	// assignment's stored bytes it was made from) is still current;
	// otherwise the timer fires through fireTx.
	fast bool
	old  []byte
	// enc is the assignment's encoding after the step; owner, state and
	// typ are the fields the write needs (the decoded message is not kept:
	// batches in flight would be pointer-rich heap for the GC to mark).
	enc       []byte
	owner     string
	state     routingv1.AssignmentState
	typ       routingv1.HandoffType
	prevOwner string
	prevState routingv1.AssignmentState
	step      clockStep
	// records are the encoded log records, in order, for partition part.
	records [][]byte
	part    uint32
}

// planBatch is a batch of plans with what they were made from beyond each
// assignment: owners' stored bytes by workspace NUL owner, and config
// versions by workspace.
type planBatch struct {
	now     time.Time
	plans   []firePlan
	owners  map[string][]byte
	configs map[string]uint32
	// last is the last timer key read; the next batch starts after it.
	last []byte
	err  error
}

// firePipelined fires the timers due now from the start of the timers
// bucket to its end, preparing each batch while the previous one commits.
func (s *Service) firePipelined(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	now := s.fireHorizon()
	batches := make(chan *planBatch, 1)
	var wg sync.WaitGroup
	// The preparer is gone (its read transaction closed) when this returns.
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		var after []byte
		for ctx.Err() == nil {
			pb := s.prepare(after, now)
			select {
			case batches <- pb:
			case <-ctx.Done():
				return
			}
			if pb.err != nil || len(pb.plans) == 0 {
				return
			}
			after = pb.last
		}
	}()
	total := 0
	for pb := range batches {
		if pb.err != nil {
			return total, pb.err
		}
		if len(pb.plans) == 0 {
			break
		}
		// A full batch means a backlog (a restart after downtime): trade
		// memory for the collector's CPU until it is fired. A few timers
		// due at a time leave the target alone.
		if total == 0 && len(pb.plans) >= s.batch {
			defer gc.Raise(backlogGCPercent)()
		}
		n, err := s.writePlans(pb)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// prepare reads up to one batch of timers due at now after key after, and
// plans them in a read transaction.
func (s *Service) prepare(after []byte, now time.Time) *planBatch {
	pb := &planBatch{now: now, owners: map[string][]byte{}, configs: map[string]uint32{}}
	err := s.db.View(func(btx *pstore.Tx) error {
		due, err := store.DueTimersAfter(btx, after, now, s.batch)
		if err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		pb.last = due[len(due)-1].Key
		txs := map[string]*store.Tx{}
		cals := map[string]*hours.Calendar{}
		policies := map[string]*routingv1.SlaPolicy{}
		pb.plans = make([]firePlan, len(due))
		for i, tm := range due {
			p := &pb.plans[i]
			p.tm = tm
			tx, ok := txs[tm.Workspace]
			if !ok {
				tx = store.In(btx, tm.Workspace)
				txs[tm.Workspace] = tx
				pb.configs[tm.Workspace] = tx.ConfigVersion()
			}
			raw := tx.AssignmentRaw(tm.AssignmentID)
			if raw == nil {
				continue
			}
			p.old = bytes.Clone(raw)
			// Only the clock, state and a few ids are needed: the rest of the
			// message (lead, decision) is copied as encoded.
			a, spliced := store.LightAssignment(p.old)
			if !spliced {
				a = &routingv1.Assignment{}
				if err := proto.Unmarshal(p.old, a); err != nil {
					// fireTx reports it with the timer it belongs to.
					continue
				}
			}
			if !sla.Running(a.GetSla()) {
				continue
			}
			okey := tm.Workspace + "\x00" + a.GetOwnerId()
			cal, ok := cals[okey]
			if !ok {
				pb.owners[okey] = bytes.Clone(tx.OwnerRaw(a.GetOwnerId()))
				cal = s.ownerCalendar(tx, a.GetOwnerId())
				cals[okey] = cal
			}
			p.prevOwner, p.prevState = a.GetOwnerId(), a.GetState()
			p.step = advanceClock(a, cal, tm, now)
			if p.step.breached {
				pkey := tm.Workspace + "\x00" + a.GetSla().GetPolicy()
				pol, ok := policies[pkey]
				if !ok {
					pol = s.policy(tx, a)
					policies[pkey] = pol
				}
				if pol.GetReassignOnBreach() || pol.GetNotifyManager() {
					continue
				}
			}
			var enc []byte
			if spliced {
				st, err := proto.Marshal(a.GetSla())
				if err != nil {
					continue
				}
				enc = store.SpliceAssignment(p.old, a.GetState(), st)
			} else {
				enc, err = proto.Marshal(a)
				if err != nil {
					continue
				}
			}
			if enc == nil {
				continue
			}
			p.enc, p.owner, p.state, p.typ, p.fast = enc, a.GetOwnerId(), a.GetState(), a.GetType(), true
			p.part = stream.Partition(tm.Workspace, a.GetAccountId(), s.parts)
			// A breach that does not escalate carries the assignment.
			var carried []byte
			if p.step.breached {
				carried = enc
			}
			p.records = append(p.records, stepRecord(tm.Workspace, a, p.step, carried))
		}
		return nil
	})
	if err != nil {
		pb.err = fmt.Errorf("prepare due timers: %w", err)
	}
	return pb
}

// writePlans commits one prepared batch. It works bucket by bucket (all
// timers, then all assignments, ...) in key order rather than timer by
// timer, so each step walks the same few pages.
func (s *Service) writePlans(pb *planBatch) (int, error) {
	var (
		n        int
		breached []routingv1.HandoffType
	)
	// Update runs its function once: n and breached need no reset.
	err := s.db.Update(func(btx *pstore.Tx) error {
		b := newFireBatch()
		// Whatever changed since the plans were made sends them to fireTx.
		stale := map[string]bool{}
		for ws, v := range pb.configs {
			if b.tx(btx, ws).ConfigVersion() != v {
				stale[ws] = true
			}
		}
		for key, raw := range pb.owners {
			ws, owner, _ := cutNUL(key)
			if !bytes.Equal(b.tx(btx, ws).OwnerRaw(owner), raw) {
				stale[key] = true
			}
		}
		// Due still: take the timers. Stale plans keep the kind found.
		const (
			skip = iota
			slow
			fast
		)
		how := make([]uint8, len(pb.plans))
		for i := range pb.plans {
			p := &pb.plans[i]
			kind, ok, err := b.tx(btx, p.tm.Workspace).TakeTimer(p.tm)
			if err != nil {
				return err
			}
			switch {
			case !ok:
				// Disarmed or re-armed since: not due any more.
				how[i] = skip
				continue
			case p.fast && kind == p.tm.Kind && !stale[p.tm.Workspace] && !stale[p.tm.Workspace+"\x00"+p.prevOwner]:
				how[i] = fast
			default:
				p.tm.Kind = kind
				how[i] = slow
			}
			n++
		}
		// The assignment is as prepared, and its clock's armed pointer is
		// the timer just taken (cleared here).
		for i := range pb.plans {
			if how[i] != fast {
				continue
			}
			p := &pb.plans[i]
			tx := b.tx(btx, p.tm.Workspace)
			if !bytes.Equal(tx.AssignmentRaw(p.tm.AssignmentID), p.old) {
				how[i] = slow
			}
		}
		for i := range pb.plans {
			if how[i] != fast {
				continue
			}
			p := &pb.plans[i]
			cleared, err := b.tx(btx, p.tm.Workspace).ClearArmed(p.tm.AssignmentID, p.tm.Key)
			if err != nil {
				return err
			}
			if !cleared {
				how[i] = slow
			}
		}
		// An assignment has one pending timer, but should a batch hold two
		// for one assignment, a later one must see the earlier one's
		// changes: once one is slow, the later ones are too, and they run
		// in timer order after every fast write.
		if len(pb.plans) > 1 {
			slowIDs := map[string]bool{}
			for i := range pb.plans {
				id := string(pb.plans[i].tm.Key[8:])
				switch {
				case how[i] == skip:
				case slowIDs[id]:
					how[i] = slow
				case how[i] == slow:
					slowIDs[id] = true
				}
			}
		}
		for i := range pb.plans {
			if how[i] != fast {
				continue
			}
			p := &pb.plans[i]
			if err := b.tx(btx, p.tm.Workspace).PutAssignmentEncoded(p.tm.AssignmentID, p.enc); err != nil {
				return err
			}
			if p.step.breached {
				breached = append(breached, p.typ)
			}
		}
		for i := range pb.plans {
			if how[i] != fast {
				continue
			}
			p := &pb.plans[i]
			if err := b.tx(btx, p.tm.Workspace).UpdateIndexes(p.tm.AssignmentID, p.owner, p.state, p.prevOwner, p.prevState); err != nil {
				return err
			}
		}
		for i := range pb.plans {
			if how[i] != fast || !pb.plans[i].step.armed {
				continue
			}
			p := &pb.plans[i]
			if err := b.tx(btx, p.tm.Workspace).Arm(p.tm.AssignmentID, p.step.next.At, string(p.step.next.Kind)); err != nil {
				return err
			}
		}
		// The log records, and the stale plans, in timer order: the routing
		// log reads as if the timers had fired one by one. Records wait per
		// partition until a stale plan appends its own, or the end.
		pending := make([][][]byte, s.parts)
		counts := make([]int, s.parts)
		for i := range pb.plans {
			if how[i] == fast {
				counts[pb.plans[i].part] += len(pb.plans[i].records)
			}
		}
		for part, n := range counts {
			pending[part] = make([][]byte, 0, n)
		}
		flush := func() error {
			for part, recs := range pending {
				if err := s.appendBatch(btx, uint32(part), recs); err != nil {
					return err
				}
				pending[part] = recs[:0]
			}
			return nil
		}
		for i := range pb.plans {
			p := &pb.plans[i]
			switch how[i] {
			case fast:
				pending[p.part] = append(pending[p.part], p.records...)
			case slow:
				if err := flush(); err != nil {
					return err
				}
				t, err := s.fireTx(b.tx(btx, p.tm.Workspace), p.tm, pb.now, b)
				if err != nil {
					return fmt.Errorf("fire %s timer of %s/%s: %w", p.tm.Kind, p.tm.Workspace, p.tm.AssignmentID, err)
				}
				if t != 0 {
					breached = append(breached, t)
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		return b.flush()
	})
	if err != nil {
		return 0, err
	}
	s.afterBatch(n, breached)
	return n, nil
}

// BatchAppender is an Appender that appends many records to a partition at
// once; *stream.Log implements it.
type BatchAppender interface {
	AppendBatchTx(tx *pstore.Tx, partition uint32, data [][]byte) (uint64, error)
}

var _ BatchAppender = (*stream.Log)(nil)

// appendBatch appends records to a partition of the routing log in order.
func (s *Service) appendBatch(btx *pstore.Tx, part uint32, recs [][]byte) error {
	if len(recs) == 0 {
		return nil
	}
	if ba, ok := s.log.(BatchAppender); ok {
		if _, err := ba.AppendBatchTx(btx, part, recs); err != nil {
			return fmt.Errorf("append routing log: %w", err)
		}
		return nil
	}
	for _, rec := range recs {
		if _, err := s.log.AppendTx(btx, part, rec); err != nil {
			return fmt.Errorf("append routing log: %w", err)
		}
	}
	return nil
}

func cutNUL(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// RunTimers is the timer loop: it fires due timers, then sleeps on the clock
// until the earliest pending timer is due or a new timer is armed, until ctx
// ends.
func (s *Service) RunTimers(ctx context.Context) error {
	for {
		if _, err := s.FireDue(ctx); err != nil {
			return err
		}
		var (
			next time.Time
			ok   bool
		)
		if err := s.db.View(func(tx *pstore.Tx) error {
			next, ok = store.NextTimer(tx)
			return nil
		}); err != nil {
			return fmt.Errorf("read next timer: %w", err)
		}
		var due <-chan time.Time
		switch now := s.clk.Now(); {
		case !ok:
		case next.After(now):
			due = s.clk.After(next.Sub(now))
		case s.fireHorizon().Before(next):
			// Due on the clock but held back by an ingestion backlog:
			// consumer commits wake the loop; poll in case none comes.
			due = s.clk.After(heldBackPoll)
		default:
			due = s.clk.After(0)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-due:
		}
	}
}
