package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxCatchUp bounds how often ActivateJourney re-reads records that arrived
// while it was catching a replay up with the live consumer.
const maxCatchUp = 20

// replays runs replay jobs one at a time; each replay records the ingestion
// offset it applied per partition in its namespace.
type replays struct {
	a    *App
	jobs chan *replayJob
}

type replayJob struct {
	ws      string
	replay  *stagesv1.Replay
	targets []uint64
}

func newReplays(a *App) *replays {
	return &replays{a: a, jobs: make(chan *replayJob, 16)}
}

// RunReplays runs the replays StartReplay queues until ctx ends; it is one
// of the service's background tasks. Replays interrupted by a restart are
// marked failed first: their shadow state is dropped.
func (a *App) RunReplays(ctx context.Context) error { return a.replays.run(ctx) }

func (r *replays) run(ctx context.Context) error {
	if err := r.failInterrupted(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-r.jobs:
			if err := r.execute(ctx, job); err != nil && ctx.Err() == nil {
				r.a.logger.Error("replay failed", "replay", job.replay.GetReplayId(), "err", err)
				r.finish(job, err)
			}
		}
	}
}

func (r *replays) failInterrupted() error {
	return r.a.db.Update(func(tx *pstore.Tx) error {
		var stale []struct {
			ws string
			r  *stagesv1.Replay
		}
		err := store.Replays(tx, func(ws string, rp *stagesv1.Replay) error {
			if rp.GetState() == stagesv1.ReplayState_REPLAY_STATE_RUNNING {
				stale = append(stale, struct {
					ws string
					r  *stagesv1.Replay
				}{ws, rp})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, st := range stale {
			st.r.State, st.r.Error = stagesv1.ReplayState_REPLAY_STATE_FAILED, "interrupted by a restart; start a new replay"
			if err := store.PutReplay(tx, st.ws, st.r); err != nil {
				return err
			}
			if err := store.ReplayNamespace(st.r.GetReplayId()).Drop(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

// execute applies partition after partition up to the targets, saving
// progress with each batch.
func (r *replays) execute(ctx context.Context, job *replayJob) error {
	rp := job.replay
	ns := store.ReplayNamespace(rp.GetReplayId())
	for p, target := range job.targets {
		if _, err := r.catchUp(ctx, job.ws, rp, ns, uint32(p), 0, target, true); err != nil {
			return err
		}
	}
	return r.finish(job, nil)
}

// catchUp applies the records of partition p in (from, to] to the shadow
// namespace and returns the last offset applied.
func (r *replays) catchUp(ctx context.Context, ws string, rp *stagesv1.Replay, ns store.Namespace, p uint32, from, to uint64, progress bool) (uint64, error) {
	if to <= from {
		return from, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := r.a.source(ctx, p, from+1)
	if err != nil {
		return from, fmt.Errorf("replay %s: open partition %d: %w", rp.GetReplayId(), p, err)
	}
	last := from
	for last < to {
		recs, _, err := sub.Recv()
		if err != nil {
			return last, fmt.Errorf("replay %s: read partition %d: %w", rp.GetReplayId(), p, err)
		}
		var batch []*ingestionv1.LogRecord
		for _, rec := range recs {
			if rec.GetOffset() > last && rec.GetOffset() <= to {
				batch = append(batch, rec)
			}
		}
		if len(batch) == 0 {
			continue
		}
		err = r.a.db.Update(func(tx *pstore.Tx) error {
			if err := r.a.replay(tx, ns, ws, rp.GetJourneyId(), rp.GetVersion(), batch); err != nil {
				return err
			}
			if err := ns.SetPosition(tx, p, batch[len(batch)-1].GetOffset()); err != nil {
				return err
			}
			if !progress {
				return nil
			}
			cp := proto.Clone(rp).(*stagesv1.Replay)
			cp.Processed += uint64(len(batch))
			return store.PutReplay(tx, ws, cp)
		})
		if err != nil {
			return last, fmt.Errorf("replay %s: apply: %w", rp.GetReplayId(), err)
		}
		if progress {
			rp.Processed += uint64(len(batch))
		}
		last = batch[len(batch)-1].GetOffset()
	}
	return last, nil
}

// finish evaluates every shadow account at the current time (a replay fires
// no timers) and records the outcome.
func (r *replays) finish(job *replayJob, failure error) error {
	rp := job.replay
	now := r.a.clock.Now()
	return r.a.db.Update(func(tx *pstore.Tx) error {
		if failure != nil {
			rp.State, rp.Error = stagesv1.ReplayState_REPLAY_STATE_FAILED, failure.Error()
		} else {
			counts, err := r.a.evaluateAll(tx, store.ReplayNamespace(rp.GetReplayId()), job.ws, rp.GetJourneyId(), rp.GetVersion(), now, journey.CauseReplay)
			if err != nil {
				rp.State, rp.Error = stagesv1.ReplayState_REPLAY_STATE_FAILED, err.Error()
			} else {
				rp.State, rp.StageCounts = stagesv1.ReplayState_REPLAY_STATE_DONE, counts
			}
		}
		rp.FinishedAt = timestamppb.New(now)
		return store.PutReplay(tx, job.ws, rp)
	})
}

// StartReplay queues a replay of the ingestion log from offset 0 up to what
// the live consumer has applied, evaluating one stored version of a journey
// into shadow state. replayID names it ("": a name is made up); a name
// already used is refused.
func (a *App) StartReplay(_ context.Context, ws, jid string, version uint32, replayID string) (*stagesv1.Replay, error) {
	if a.source == nil {
		return nil, fmt.Errorf("replays need the ingestion log, which this process cannot read: %w", apierr.ErrFailedPrecondition)
	}
	now := a.clock.Now()
	job := &replayJob{ws: ws, targets: make([]uint64, a.parts)}
	// The gateway over several replicas names the replay once (replica 0's
	// choice) and gives every other replica that id.
	id := replayID
	if id == "" {
		id = jid + "-v" + strconv.FormatUint(uint64(version), 10) + "-" + strconv.FormatInt(now.UnixNano(), 36)
	}
	rp := &stagesv1.Replay{
		ReplayId:  id,
		JourneyId: jid, Version: version, State: stagesv1.ReplayState_REPLAY_STATE_RUNNING, StartedAt: timestamppb.New(now),
	}
	err := a.db.Update(func(tx *pstore.Tx) error {
		if _, err := store.GetDefinition(tx, ws, jid, version); err != nil {
			return err
		}
		if replayID != "" {
			if _, err := store.GetReplay(tx, ws, id); err == nil {
				return fmt.Errorf("replay %q: %w", id, apierr.ErrAlreadyExists)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		for p := range job.targets {
			c, err := stream.ReadCursor(tx, ConsumerName, uint32(p))
			if err != nil {
				return err
			}
			job.targets[p] = c
			rp.Total += c
		}
		return store.PutReplay(tx, ws, rp)
	})
	if err != nil {
		return nil, fmt.Errorf("start replay: %w", err)
	}
	job.replay = proto.Clone(rp).(*stagesv1.Replay)
	select {
	case a.replays.jobs <- job:
	default:
		return nil, apierr.Exhausted(10*time.Second, "too many replays queued; retry later")
	}
	return rp, nil
}

// GetReplay reports a replay's progress.
func (a *App) GetReplay(_ context.Context, ws, id string) (*stagesv1.Replay, error) {
	var rp *stagesv1.Replay
	err := a.db.View(func(tx *pstore.Tx) error {
		var err error
		rp, err = store.GetReplay(tx, ws, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rp, nil
}

// ActivateJourney switches the live version of a journey and returns its
// definition. When a finished replay of that version exists, its state
// becomes live after catching up with the records the live consumer
// applied since; otherwise accounts keep their state and are evaluated by
// the new version from their next event or timer.
func (a *App) ActivateJourney(ctx context.Context, ws, jid string, version uint32) (*stagesv1.JourneyDefinition, error) {
	var def *stagesv1.JourneyDefinition
	var done *stagesv1.Replay
	err := a.db.View(func(tx *pstore.Tx) error {
		var err error
		if def, err = store.GetDefinition(tx, ws, jid, version); err != nil {
			return err
		}
		return store.Replays(tx, func(w string, rp *stagesv1.Replay) error {
			if w == ws && rp.GetJourneyId() == jid && rp.GetVersion() == version &&
				rp.GetState() == stagesv1.ReplayState_REPLAY_STATE_DONE &&
				(done == nil || rp.GetStartedAt().AsTime().After(done.GetStartedAt().AsTime())) {
				done = rp
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("activate journey: %w", err)
	}
	if done != nil {
		err = a.db.View(func(tx *pstore.Tx) error {
			if !store.ReplayNamespace(done.GetReplayId()).Exists(tx) {
				done = nil // already activated once: its shadow state is gone
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if done == nil {
		err = a.db.Update(func(tx *pstore.Tx) error { return store.SetActive(tx, ws, jid, version) })
		if err != nil {
			return nil, err
		}
		return def, nil
	}
	if err := a.activateReplay(ctx, ws, done); err != nil {
		return nil, fmt.Errorf("activate replay %s: %w", done.GetReplayId(), err)
	}
	return def, nil
}

// readCursors returns the live consumer's cursor on each partition.
func readCursors(tx *pstore.Tx, n int) ([]uint64, error) {
	out := make([]uint64, n)
	for p := range out {
		c, err := stream.ReadCursor(tx, ConsumerName, uint32(p))
		if err != nil {
			return nil, err
		}
		out[p] = c
	}
	return out, nil
}

// activateReplay catches the shadow state up with the live cursor, then, in
// one transaction that checks nothing new was applied live meanwhile, makes
// it live.
func (a *App) activateReplay(ctx context.Context, ws string, rp *stagesv1.Replay) error {
	ns := store.ReplayNamespace(rp.GetReplayId())
	var pos []uint64
	err := a.db.View(func(tx *pstore.Tx) error {
		var err error
		pos, err = ns.Positions(tx, a.parts)
		return err
	})
	if err != nil {
		return err
	}
	for attempt := 0; attempt < maxCatchUp; attempt++ {
		var live []uint64
		err := a.db.View(func(tx *pstore.Tx) error {
			var err error
			live, err = readCursors(tx, len(pos))
			return err
		})
		if err != nil {
			return err
		}
		for p := range pos {
			n, err := a.replays.catchUp(ctx, ws, rp, ns, uint32(p), pos[p], live[p], false)
			if err != nil {
				return err
			}
			pos[p] = n
		}
		switched := false
		err = a.db.Update(func(tx *pstore.Tx) error {
			now, err := readCursors(tx, len(pos))
			if err != nil {
				return err
			}
			for p := range pos {
				if now[p] != pos[p] {
					return nil // the live consumer moved on; catch up again
				}
			}
			if err := a.activate(tx, ns, ws, rp.GetJourneyId(), rp.GetVersion(), a.clock.Now()); err != nil {
				return err
			}
			switched = true
			return ns.Drop(tx)
		})
		if err != nil {
			return err
		}
		if switched {
			return nil
		}
	}
	return fmt.Errorf("the live consumer keeps moving; retry activation: %w", apierr.ErrFailedPrecondition)
}
