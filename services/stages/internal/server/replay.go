package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ingestionCursor is the live consumer's cursor name; replays read up to it.
const ingestionCursor = "ingestion"

// maxCatchUp bounds how often ActivateJourney re-reads records that arrived
// while it was catching a replay up with the live consumer.
const maxCatchUp = 20

// replays runs replay jobs one at a time; each replay records the ingestion
// offset it applied per partition in its namespace.
type replays struct {
	s    *Server
	jobs chan *replayJob
}

type replayJob struct {
	ws      string
	replay  *stagesv1.Replay
	targets []uint64
}

func newReplays(s *Server) *replays {
	return &replays{s: s, jobs: make(chan *replayJob, 16)}
}

// run executes jobs until ctx ends. Replays interrupted by a restart are
// marked failed first: their shadow state is dropped.
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
				r.s.logger.Error("replay failed", "replay", job.replay.GetReplayId(), "err", err)
				r.finish(job, err)
			}
		}
	}
}

func (r *replays) failInterrupted() error {
	return r.s.db.Update(func(tx *bbolt.Tx) error {
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
	sub, err := r.s.source(ctx, p, from+1)
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
		err = r.s.db.Update(func(tx *bbolt.Tx) error {
			if err := r.s.eng.Replay(tx, ns, ws, rp.GetJourneyId(), rp.GetVersion(), batch); err != nil {
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
	now := r.s.clock.Now()
	return r.s.db.Update(func(tx *bbolt.Tx) error {
		if failure != nil {
			rp.State, rp.Error = stagesv1.ReplayState_REPLAY_STATE_FAILED, failure.Error()
		} else {
			counts, err := r.s.eng.EvaluateAll(tx, store.ReplayNamespace(rp.GetReplayId()), job.ws, rp.GetJourneyId(), rp.GetVersion(), now, journey.CauseReplay)
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

// StartReplay replays the ingestion log from offset 0 up to what the live
// consumer has applied, evaluating one stored version into shadow state.
func (s *Server) StartReplay(ctx context.Context, req *stagesv1.StartReplayRequest) (*stagesv1.StartReplayResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), true); err != nil {
		return nil, s.toStatus(err)
	}
	if req.GetVersion() == 0 {
		return nil, s.toStatus(invalid("version", "required"))
	}
	if err := checkID("replay_id", req.GetReplayId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	if s.source == nil {
		return nil, s.toStatus(fmt.Errorf("replays need the ingestion log, which this process cannot read: %w", errFailedPrecondition))
	}
	now := s.clock.Now()
	job := &replayJob{ws: ws, targets: make([]uint64, s.parts)}
	// The gateway over several replicas names the replay once (replica 0's
	// choice) and gives every other replica that id.
	id := req.GetReplayId()
	if id == "" {
		id = req.GetJourneyId() + "-v" + strconv.FormatUint(uint64(req.GetVersion()), 10) + "-" + strconv.FormatInt(now.UnixNano(), 36)
	}
	rp := &stagesv1.Replay{
		ReplayId:  id,
		JourneyId: req.GetJourneyId(), Version: req.GetVersion(), State: stagesv1.ReplayState_REPLAY_STATE_RUNNING, StartedAt: timestamppb.New(now),
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if _, err := store.GetDefinition(tx, ws, req.GetJourneyId(), req.GetVersion()); err != nil {
			return err
		}
		if req.GetReplayId() != "" {
			if _, err := store.GetReplay(tx, ws, id); err == nil {
				return fmt.Errorf("replay %q: %w", id, errAlreadyExists)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		for p := range job.targets {
			c, err := stream.ReadCursor(tx, ingestionCursor, uint32(p))
			if err != nil {
				return err
			}
			job.targets[p] = c
			rp.Total += c
		}
		return store.PutReplay(tx, ws, rp)
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("start replay: %w", err))
	}
	job.replay = proto.Clone(rp).(*stagesv1.Replay)
	select {
	case s.replays.jobs <- job:
	default:
		st, _ := status.New(codes.ResourceExhausted, "too many replays queued; retry later").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(10 * time.Second)})
		return nil, st.Err()
	}
	return &stagesv1.StartReplayResponse{Replay: rp}, nil
}

// GetReplay reports a replay's progress.
func (s *Server) GetReplay(ctx context.Context, req *stagesv1.GetReplayRequest) (*stagesv1.GetReplayResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("replay_id", req.GetReplayId(), true); err != nil {
		return nil, s.toStatus(err)
	}
	var rp *stagesv1.Replay
	err = s.db.View(func(tx *bbolt.Tx) error {
		var err error
		rp, err = store.GetReplay(tx, ws, req.GetReplayId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &stagesv1.GetReplayResponse{Replay: rp}, nil
}

// ActivateJourney switches the live version. When a finished replay of that
// version exists, its state becomes live after catching up with the records
// the live consumer applied since; otherwise accounts keep their state and
// are evaluated by the new version from their next event or timer.
func (s *Server) ActivateJourney(ctx context.Context, req *stagesv1.ActivateJourneyRequest) (*stagesv1.ActivateJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), true); err != nil {
		return nil, s.toStatus(err)
	}
	if req.GetVersion() == 0 {
		return nil, s.toStatus(invalid("version", "required"))
	}
	var def *stagesv1.JourneyDefinition
	var done *stagesv1.Replay
	err = s.db.View(func(tx *bbolt.Tx) error {
		var err error
		if def, err = store.GetDefinition(tx, ws, req.GetJourneyId(), req.GetVersion()); err != nil {
			return err
		}
		return store.Replays(tx, func(w string, rp *stagesv1.Replay) error {
			if w == ws && rp.GetJourneyId() == req.GetJourneyId() && rp.GetVersion() == req.GetVersion() &&
				rp.GetState() == stagesv1.ReplayState_REPLAY_STATE_DONE &&
				(done == nil || rp.GetStartedAt().AsTime().After(done.GetStartedAt().AsTime())) {
				done = rp
			}
			return nil
		})
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("activate journey: %w", err))
	}
	if done != nil {
		err = s.db.View(func(tx *bbolt.Tx) error {
			if !store.ReplayNamespace(done.GetReplayId()).Exists(tx) {
				done = nil // already activated once: its shadow state is gone
			}
			return nil
		})
		if err != nil {
			return nil, s.toStatus(err)
		}
	}
	if done == nil {
		err = s.db.Update(func(tx *bbolt.Tx) error { return store.SetActive(tx, ws, req.GetJourneyId(), req.GetVersion()) })
		if err != nil {
			return nil, s.toStatus(err)
		}
		return &stagesv1.ActivateJourneyResponse{Definition: def}, nil
	}
	if err := s.activateReplay(ctx, ws, done); err != nil {
		return nil, s.toStatus(fmt.Errorf("activate replay %s: %w", done.GetReplayId(), err))
	}
	return &stagesv1.ActivateJourneyResponse{Definition: def}, nil
}

// activateReplay catches the shadow state up with the live cursor, then, in
// one transaction that checks nothing new was applied live meanwhile, makes
// it live.
func (s *Server) activateReplay(ctx context.Context, ws string, rp *stagesv1.Replay) error {
	ns := store.ReplayNamespace(rp.GetReplayId())
	var pos []uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		pos, err = ns.Positions(tx, s.parts)
		return err
	})
	if err != nil {
		return err
	}
	for attempt := 0; attempt < maxCatchUp; attempt++ {
		live := make([]uint64, len(pos))
		err := s.db.View(func(tx *bbolt.Tx) error {
			for p := range live {
				c, err := stream.ReadCursor(tx, ingestionCursor, uint32(p))
				if err != nil {
					return err
				}
				live[p] = c
			}
			return nil
		})
		if err != nil {
			return err
		}
		for p := range pos {
			n, err := s.replays.catchUp(ctx, ws, rp, ns, uint32(p), pos[p], live[p], false)
			if err != nil {
				return err
			}
			pos[p] = n
		}
		switched := false
		err = s.db.Update(func(tx *bbolt.Tx) error {
			for p := range pos {
				c, err := stream.ReadCursor(tx, ingestionCursor, uint32(p))
				if err != nil {
					return err
				}
				if c != pos[p] {
					return nil // the live consumer moved on; catch up again
				}
			}
			if err := s.eng.Activate(tx, ns, ws, rp.GetJourneyId(), rp.GetVersion(), s.clock.Now()); err != nil {
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
	return fmt.Errorf("the live consumer keeps moving; retry activation: %w", errFailedPrecondition)
}
