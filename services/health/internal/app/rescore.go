package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/gc"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// rescoreChunk is how many accounts a rescore commits per transaction.
const rescoreChunk = 4096

// Rescore recomputes every account of a workspace with its active model at
// the clock's current time and returns how many accounts it rescored.
//
// Accounts are committed a.chunk at a time (one huge bbolt transaction grows
// superlinearly, and a rescore interrupted midway is safe to run again), in
// a pipeline: while one chunk is written and committed, the next is read in
// short read transactions and scored on every CPU. A chunk is scored from
// what it read, so its write transaction first checks that each account's
// stored aggregate, meta and health are still those bytes; an account that
// a consumer changed in between is scored again from its current state, and
// one that was deleted is skipped. Every account thus goes from one stored
// state to its rescored state atomically, as if rescored in one transaction.
func (a *App) Rescore(ctx context.Context, ws string) (int, error) {
	defer gc.Raise(rescoreGCPercent)()
	now := a.clk.Now()
	var ids []string
	var cm *model.Compiled
	if err := a.db.View(func(tx *kv.Tx) error {
		var err error
		if cm, err = a.Model(tx, ws); err != nil {
			return err
		}
		ids, err = store.AccountIDs(tx, ws)
		return err
	}); err != nil {
		return 0, fmt.Errorf("list accounts to rescore: %w", err)
	}

	type scored struct {
		jobs []rescoreJob
		err  error
	}
	ends := chunkEnds(len(ids), a.chunk)
	// One scored chunk waits while another is written: enough to keep the
	// writer busy without holding more chunks in memory.
	ready := make(chan scored, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ready)
		start := 0
		for _, end := range ends {
			chunk := ids[start:end]
			start = end
			if ctx.Err() != nil {
				return // the writer reports it
			}
			jobs, err := a.scoreFromDB(ws, chunk, cm, now)
			select {
			case ready <- scored{jobs: jobs, err: err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	n := 0
	for i := 0; i < len(ends); i++ {
		c, ok := <-ready
		if !ok {
			// The scorer stopped early: only cancellation does that.
			if err := ctx.Err(); err != nil {
				return n, err
			}
			return n, errors.New("rescore workspace: scoring stopped early")
		}
		if c.err != nil {
			return n, fmt.Errorf("rescore workspace: %w", c.err)
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if a.beforeWrite != nil {
			a.beforeWrite(i)
		}
		wrote := 0
		if err := a.db.Update(func(tx *kv.Tx) error {
			var err error
			wrote, err = a.revalidate(tx, ws, c.jobs, cm, now)
			if err != nil {
				return err
			}
			return a.write(tx, ws, c.jobs)
		}); err != nil {
			return n, fmt.Errorf("rescore workspace: %w", err)
		}
		n += wrote
	}
	return n, nil
}

// chunkEnds splits n accounts into transactions of chunk accounts, the
// first and last few smaller: the writer waits while the first chunk is
// scored and the scorers idle while the last one commits, so small ends
// shorten both. It returns each chunk's end.
func chunkEnds(n, chunk int) []int {
	chunk = max(chunk, 1)
	var ramp []int
	for s := chunk / 8; s > 0 && s < chunk; s *= 2 {
		ramp = append(ramp, s)
	}
	edges := 0
	for _, s := range ramp {
		edges += 2 * s
	}
	if n < edges+chunk {
		ramp = nil
	}
	var ends []int
	at := 0
	add := func(size int) {
		at = min(at+size, n)
		ends = append(ends, at)
	}
	for _, s := range ramp {
		add(s)
	}
	tail := 0
	for _, s := range ramp {
		tail += s
	}
	for at < n-tail {
		add(min(chunk, n-tail-at))
	}
	for i := len(ramp) - 1; i >= 0; i-- {
		add(ramp[i])
	}
	return ends
}

// rescoreGCPercent is the garbage collector target (GOGC) while a rescore
// runs. A rescore allocates about 15 KB of short-lived garbage per account
// against a live heap of a few chunks, so at the default of 100 the
// collector runs every few megabytes and takes about a sixth of the CPU; at
// 200 it runs half as often, for a heap that peaks at three times the live
// one instead of twice (a memory limit, GOMEMLIMIT, still caps it).
const rescoreGCPercent = 200

// rescoreJob is one account of a rescore: the stored state it was scored
// from and what scoring produced.
type rescoreJob struct {
	id string
	// in is the stored state, copied out of its transaction; in.Agg is nil
	// when the account no longer exists (nothing is written for it).
	in  store.Stored
	at  time.Time
	pr  model.Priors
	out *outcome
	// meta is the account's encoded meta after scoring.
	meta []byte
}

// scoreBatch is how many accounts a rescore worker reads in one read
// transaction and then scores: small enough that workers finish a chunk
// together, large enough that transactions are few.
const scoreBatch = 128

// scoreFromDB reads and scores ids on every CPU. Workers take batches of
// scoreBatch accounts as they go, each read in its own short read
// transaction, so that one slow batch does not leave a CPU idle.
func (a *App) scoreFromDB(ws string, ids []string, cm *model.Compiled, now time.Time) ([]rescoreJob, error) {
	jobs := make([]rescoreJob, len(ids))
	err := inParallel(len(ids), scoreBatch, a.reach(cm), func(lo, hi int, act *measure.Activation, dec *decoder) error {
		err := a.db.View(func(tx *kv.Tx) error {
			r, err := store.NewReader(tx, ws)
			if err != nil {
				return err
			}
			for i := lo; i < hi; i++ {
				if err := readJob(r, ids[i], now, true, &jobs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		for i := lo; i < hi && err == nil; i++ {
			err = scoreJob(&jobs[i], cm, act, dec)
		}
		return err
	})
	return jobs, err
}

// scoreInTx reads, scores and writes ids in tx; reading and writing stay
// on tx's goroutine, scoring runs on every CPU.
func (a *App) scoreInTx(tx *kv.Tx, ws string, ids []string, cm *model.Compiled, now time.Time) error {
	r, err := store.NewReader(tx, ws)
	if err != nil {
		return err
	}
	jobs := make([]rescoreJob, len(ids))
	for i, id := range ids {
		if err := readJob(r, id, now, false, &jobs[i]); err != nil {
			return err
		}
		if jobs[i].in.Agg == nil {
			return fmt.Errorf("get account %q: %w", id, store.ErrNotFound)
		}
	}
	// The accounts are read already: one share per CPU.
	share := (len(ids) + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	err = inParallel(len(ids), share, a.reach(cm), func(lo, hi int, act *measure.Activation, dec *decoder) error {
		for i := lo; i < hi; i++ {
			if err := scoreJob(&jobs[i], cm, act, dec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return a.write(tx, ws, jobs)
}

// inParallel calls fn for the chunks [lo, hi) of at most chunk items that
// cover [0, n), on up to GOMAXPROCS workers, each with its own activation
// and decoder (reach as in decoder). Workers take the next chunk as they
// finish one, and each stops at its first error; the errors are joined.
func inParallel(n, chunk, reach int, fn func(lo, hi int, act *measure.Activation, dec *decoder) error) error {
	chunk = max(1, chunk)
	chunks := (n + chunk - 1) / chunk
	workers := max(1, min(runtime.GOMAXPROCS(0), chunks))
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			act, dec := measure.NewActivation(), &decoder{scratch: &account.Scratch{}, reach: reach}
			for errs[w] == nil {
				c := int(next.Add(1)) - 1
				if c >= chunks {
					return
				}
				errs[w] = fn(c*chunk, min((c+1)*chunk, n), act, dec)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readJob reads acct's stored state and trend inputs with r into j,
// copying the state when it must outlive tx.
func readJob(r *store.Reader, acct string, now time.Time, clone bool, j *rescoreJob) error {
	*j = rescoreJob{id: acct, in: r.Get(acct)}
	if j.in.Agg == nil {
		return nil
	}
	if clone {
		j.in = j.in.Clone()
	}
	meta, err := store.DecodeMeta(j.in.Meta)
	if err != nil {
		return fmt.Errorf("rescore %q: %w", acct, err)
	}
	// The evaluation time only depends on the account's last evaluation.
	j.at = asOf(&store.Account{Meta: *meta}, now)
	if j.pr, err = priorsFrom(func(day string) (float64, error) { return r.SnapshotScoreAt(acct, day) }, j.at); err != nil {
		return fmt.Errorf("rescore %q: %w", acct, err)
	}
	return nil
}

// decoder is a rescore worker's aggregate decoding: into reused storage,
// and only as many days back as the model and the signals read.
type decoder struct {
	scratch *account.Scratch
	// reach is how many days back from the evaluation day scoring reads
	// the daily buckets; -1 when unknown (decode them all).
	reach int
}

// scoreJob decodes and scores j; it touches nothing shared. With dec (one
// per goroutine) the aggregate is decoded into reused storage, so the
// decoded state is dropped once scored: only j.out and j.meta remain.
func scoreJob(j *rescoreJob, cm *model.Compiled, act *measure.Activation, dec *decoder) error {
	if j.in.Agg == nil {
		return nil
	}
	var scratch *account.Scratch
	from := int32(math.MinInt32)
	if dec != nil {
		scratch = dec.scratch
		if dec.reach >= 0 {
			// One day more than read, so that no rounding can matter.
			from = account.DayOf(j.at) - int32(dec.reach)
		}
	}
	acc, err := store.DecodeAccountWith(scratch, from, j.in.Agg, j.in.Meta)
	if err != nil {
		return fmt.Errorf("rescore %q: %w", j.id, err)
	}
	st := &state{acc: acc}
	if j.in.Health != nil {
		if st.health, err = store.UnmarshalHealth(j.in.Health); err != nil {
			return fmt.Errorf("rescore %q: decode health: %w", j.id, err)
		}
	}
	if j.out, err = compute(st, cm, j.at, func() (model.Priors, error) { return j.pr, nil }, act); err != nil {
		return fmt.Errorf("rescore %q: %w", j.id, err)
	}
	if err := j.out.encode(); err != nil {
		return fmt.Errorf("rescore %q: %w", j.id, err)
	}
	j.meta = store.EncodeMeta(&acc.Meta)
	return nil
}

// reach is how many days back from the evaluation day scoring with cm reads
// an account's daily buckets: the farthest of the model's expressions
// (account.Env.Horizon) and of the signals; -1 when an expression's reach
// cannot be told. It is computed once per compiled model.
func (a *App) reach(cm *model.Compiled) int {
	a.mu.Lock()
	r, ok := a.reaches[cm]
	a.mu.Unlock()
	if ok {
		return r
	}
	r = signals.Horizon
	m := cm.Model
	exprs := make([]string, 0, 16)
	for _, c := range m.GetComponents() {
		exprs = append(exprs, c.GetMeasure())
	}
	for _, p := range m.GetProfiles() {
		exprs = append(exprs, p.GetWhen())
		for _, c := range p.GetComponents() {
			exprs = append(exprs, c.GetMeasure())
		}
	}
	for _, x := range exprs {
		days, known := a.comp.Env().Horizon(x)
		if !known {
			r = -1
			break
		}
		r = max(r, days)
	}
	a.mu.Lock()
	if len(a.reaches) >= 64 {
		clear(a.reaches) // models replaced by newer versions; rebuilt on use
	}
	a.reaches[cm] = r
	a.mu.Unlock()
	return r
}

// revalidate checks, before anything is written in tx, that every job was
// scored from the account's current stored state, and scores again from the
// current state those that a consumer changed meanwhile. It returns how many
// accounts still exist.
func (a *App) revalidate(tx *kv.Tx, ws string, jobs []rescoreJob, cm *model.Compiled, now time.Time) (int, error) {
	r, err := store.NewReader(tx, ws)
	if err != nil {
		return 0, err
	}
	var act *measure.Activation
	n := 0
	for i := range jobs {
		j := &jobs[i]
		if cur := r.Get(j.id); !cur.Equal(&j.in) {
			if err := readJob(r, j.id, now, true, j); err != nil {
				return 0, err
			}
			if act == nil {
				act = measure.NewActivation()
			}
			if err := scoreJob(j, cm, act, nil); err != nil {
				return 0, err
			}
		}
		if j.in.Agg != nil {
			n++
		}
	}
	return n, nil
}

// write stores scored jobs, bucket by bucket (each bucket's pages stay hot
// while it is written), and publishes their records in account order.
func (a *App) write(tx *kv.Tx, ws string, jobs []rescoreJob) error {
	w := store.NewBulkWriter(tx, ws)
	var changed []*commonv1.Signal
	for i := range jobs {
		if j := &jobs[i]; j.out != nil {
			for _, s := range j.out.enc.Signals {
				if err := w.PutSignalRecord(s.Signal, s.Data); err != nil {
					return err
				}
				a.countSignal(s.Signal)
				changed = append(changed, s.Signal)
			}
		}
	}
	// The open-signal index is keyed by reason first: write it in its order.
	sort.Slice(changed, func(a, b int) bool {
		if ra, rb := changed[a].GetReason(), changed[b].GetReason(); ra != rb {
			return ra < rb
		}
		return changed[a].GetAccountId() < changed[b].GetAccountId()
	})
	for _, s := range changed {
		if err := w.IndexSignal(s); err != nil {
			return err
		}
	}
	for i := range jobs {
		if j := &jobs[i]; j.out != nil {
			if err := w.PutSnapshot(j.id, j.out.enc.Day, j.out.enc.Snapshot); err != nil {
				return err
			}
		}
	}
	for i := range jobs {
		if j := &jobs[i]; j.out != nil {
			if err := w.PutHealth(j.id, j.out.enc.Health); err != nil {
				return err
			}
		}
	}
	for i := range jobs {
		if j := &jobs[i]; j.out != nil {
			if err := w.PutRow(j.id, j.out.enc.Row); err != nil {
				return err
			}
		}
	}
	for i := range jobs {
		if j := &jobs[i]; j.out != nil {
			if err := w.PutMeta(j.id, j.meta); err != nil {
				return err
			}
		}
	}
	for i := range jobs {
		if j := &jobs[i]; j.out != nil {
			p := stream.Partition(ws, j.id, a.log.Partitions())
			for _, r := range j.out.records {
				if _, err := a.log.AppendTx(tx, p, r); err != nil {
					return fmt.Errorf("append to health log: %w", err)
				}
			}
		}
	}
	due := a.nextCheck()
	for i := range jobs {
		if j := &jobs[i]; j.out != nil && j.out.arm {
			if err := w.ArmTimer(j.id, a.dueBy(j.out.next, due)); err != nil {
				return err
			}
		} else if j.out != nil {
			if err := w.DisarmTimer(j.id); err != nil {
				return err
			}
		}
	}
	return nil
}
