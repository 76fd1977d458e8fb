package app

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/logtime"
	"github.com/cairn-dev/cairn/pkg/domain/logws"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// Sources are the upstream logs a replay reads again from the start, as
// the consumers read them.
type Sources struct {
	Stages     stream.Source[*stagesv1.LogRecord]
	Health     stream.Source[*healthv1.LogRecord]
	Routing    []stream.Source[*routingv1.LogRecord]
	Partitions uint32
}

// replayBatch is how many records a replay applies per transaction.
const replayBatch = 512

// replayIdle is how long a replay waits on a partition whose last records
// up to the head it saw were deleted (right to be forgotten): their gap
// leaves nothing to read, and the subscription then waits for new records.
const replayIdle = 10 * time.Second

// replayStats counts what a replay did; nil counts nothing (live).
type replayStats struct {
	read, firedN, skipped atomic.Int64
}

func (r *replayStats) fired() {
	if r != nil {
		r.firedN.Add(1)
	}
}

func (r *replayStats) skip() {
	if r != nil {
		r.skipped.Add(1)
	}
}

// StartReplay starts replaying plays (of the active version) over the
// history, for records at or after since (zero: all), and returns the
// replay, running in the background.
func (s *Service) StartReplay(ctx context.Context, ws string, playIDs []string, since time.Time) (*playsv1.Replay, error) {
	if s.sources == nil {
		return nil, apierr.FailedPrecondition("this plays service reads no upstream logs (-stages-addr, -health-addr and -routing-addr are empty): there is no history to replay")
	}
	plays := map[string]bool{}
	rp, err := pstore.CommitValue(ctx, s.db, func(tx *pstore.Tx) (*playsv1.Replay, error) {
		t := store.In(tx, ws)
		set, _, err := s.activeSet(t)
		if err != nil {
			return nil, err
		}
		if set == nil {
			return nil, apierr.FailedPrecondition("workspace %q has no plays: apply a plays file first", ws)
		}
		for i, id := range playIDs {
			if _, ok := set.Play(id); !ok {
				return nil, apierr.Field(fmt.Sprintf("play_ids[%d]", i), "no play %q in the active plays file", id)
			}
			plays[id] = true
		}
		var running string
		if err := t.Replays(func(r *playsv1.Replay) bool {
			if r.GetState() == playsv1.ReplayState_REPLAY_STATE_RUNNING {
				running = r.GetReplayId()
				return false
			}
			return true
		}); err != nil {
			return nil, err
		}
		if running != "" {
			return nil, apierr.FailedPrecondition("replay %s is still running in this workspace; wait for it (GetReplay)", running)
		}
		seq, err := t.NextSeq()
		if err != nil {
			return nil, err
		}
		r := &playsv1.Replay{
			Workspace: ws, ReplayId: fmt.Sprintf("r_%d", seq), PlayIds: playIDs, State: playsv1.ReplayState_REPLAY_STATE_RUNNING,
			StartedAt: timestamppb.New(s.clk.Now()),
		}
		if !since.IsZero() {
			r.Since = timestamppb.New(since)
		}
		return r, t.PutReplay(r)
	})
	if err != nil {
		return nil, err
	}
	s.replays.Add(1)
	go func() {
		defer s.replays.Done()
		s.runReplay(rp, plays, since)
	}()
	return rp, nil
}

// GetReplay returns a replay.
func (s *Service) GetReplay(ws, id string) (*playsv1.Replay, error) {
	var out *playsv1.Replay
	err := s.db.View(func(tx *pstore.Tx) error {
		r, err := store.In(tx, ws).Replay(id)
		if err != nil {
			return err
		}
		if r == nil {
			return apierr.NotFound("replay %q not found", id)
		}
		out = r
		return nil
	})
	return out, err
}

// WaitReplays waits for running replays to stop (tests, shutdown).
func (s *Service) WaitReplays() { s.replays.Wait() }

// failInterrupted marks the replays a crash or restart cut short as
// failed: starting them again is safe.
func (s *Service) failInterrupted() error {
	return s.db.Update(func(tx *pstore.Tx) error {
		wss, err := activeWorkspaces(tx)
		if err != nil {
			return err
		}
		for _, ws := range wss {
			t := store.In(tx, ws)
			var cut []*playsv1.Replay
			if err := t.Replays(func(r *playsv1.Replay) bool {
				if r.GetState() == playsv1.ReplayState_REPLAY_STATE_RUNNING {
					cut = append(cut, r)
				}
				return true
			}); err != nil {
				return err
			}
			for _, r := range cut {
				r.State, r.FinishedAt = playsv1.ReplayState_REPLAY_STATE_FAILED, timestamppb.New(s.clk.Now())
				r.Error = "interrupted by a restart; start it again: what it fired will not fire twice"
				if err := store.DropReplay(tx, ws, r.GetReplayId()); err != nil {
					return err
				}
				if err := t.PutReplay(r); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// replayItem is one upstream record, ready to apply in a replay.
type replayItem struct {
	at    time.Time
	apply func(tx *pstore.Tx, sc scope) error
}

// runReplay reads every upstream partition from its first record up to
// the head it finds, merges them by event time, and applies the
// workspace's records through the replayed plays in transactions of
// replayBatch records.
func (s *Service) runReplay(rp *playsv1.Replay, plays map[string]bool, since time.Time) {
	ws, id := rp.GetWorkspace(), rp.GetReplayId()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stats := &replayStats{}
	sc := scope{replay: id, plays: plays, since: since, stats: stats}
	streams, total := s.replayStreams(ctx, ws)
	progress := func(tx *pstore.Tx, state playsv1.ReplayState, errText string) error {
		t := store.In(tx, ws)
		r, err := t.Replay(id)
		if err != nil || r == nil {
			return err
		}
		r.RecordsRead, r.RecordsTotal = stats.read.Load(), total.Load()
		r.Fired, r.AlreadyFired = stats.firedN.Load(), stats.skipped.Load()
		r.State, r.Error = state, errText
		if state != playsv1.ReplayState_REPLAY_STATE_RUNNING {
			r.FinishedAt = timestamppb.New(s.clk.Now())
			if err := store.DropReplay(tx, ws, id); err != nil {
				return err
			}
		}
		return t.PutReplay(r)
	}
	err := mergeByTime(streams, func(items []replayItem) error {
		return s.db.Commit(ctx, func(tx *pstore.Tx) error {
			for _, it := range items {
				if err := it.apply(tx, sc); err != nil {
					return err
				}
			}
			stats.read.Add(int64(len(items)))
			return progress(tx, playsv1.ReplayState_REPLAY_STATE_RUNNING, "")
		})
	})
	state, text := playsv1.ReplayState_REPLAY_STATE_DONE, ""
	if err != nil {
		state, text = playsv1.ReplayState_REPLAY_STATE_FAILED, err.Error()
		s.logger.Error("plays: replay failed", "workspace", ws, "replay", id, "err", err)
	}
	if err := s.db.Commit(context.Background(), func(tx *pstore.Tx) error { return progress(tx, state, text) }); err != nil {
		s.logger.Error("plays: replay status", "workspace", ws, "replay", id, "err", err)
	}
}

// replayStream yields one upstream partition's records in batches.
type replayStream struct {
	order int
	next  func() ([]replayItem, error) // nil, nil at the end
	buf   []replayItem
	done  bool
}

// replayStreams opens every upstream partition for ws; total counts the
// records the partitions held when first read.
func (s *Service) replayStreams(ctx context.Context, ws string) ([]*replayStream, *atomic.Int64) {
	src := s.sources
	total := &atomic.Int64{}
	var out []*replayStream
	add := func(next func() ([]replayItem, error)) {
		out = append(out, &replayStream{order: len(out), next: next})
	}
	for p := range src.Partitions {
		if src.Stages != nil {
			add(partitionReader(ctx, s, src.Stages, p, total, ws, logws.Stages, logtime.Stages,
				func(r *stagesv1.LogRecord) uint64 { return r.GetOffset() },
				func(tx *pstore.Tx, sc scope, r *stagesv1.LogRecord) error {
					sc.log = "stages"
					return s.applyStages(tx, p, []*stagesv1.LogRecord{r}, sc)
				}))
		}
		if src.Health != nil {
			add(partitionReader(ctx, s, src.Health, p, total, ws, logws.Health, logtime.Health,
				func(r *healthv1.LogRecord) uint64 { return r.GetOffset() },
				func(tx *pstore.Tx, sc scope, r *healthv1.LogRecord) error {
					sc.log = "health"
					return s.applyHealth(tx, p, []*healthv1.LogRecord{r}, sc)
				}))
		}
		for k, rs := range src.Routing {
			add(partitionReader(ctx, s, rs, p, total, ws, logws.Routing, logtime.Routing,
				func(r *routingv1.LogRecord) uint64 { return r.GetOffset() },
				func(tx *pstore.Tx, sc scope, r *routingv1.LogRecord) error {
					sc.log = stream.ReplicaName("routing", k)
					return s.applyRouting(tx, p, []*routingv1.LogRecord{r}, sc)
				}))
		}
	}
	return out, total
}

// partitionReader reads partition p of one log from its first record up
// to the head the first batch reports, keeping the records of ws.
func partitionReader[T any](ctx context.Context, s *Service, src stream.Source[T], p uint32, total *atomic.Int64, ws string,
	workspace func(T) string, eventTime func(T) time.Time, offset func(T) uint64, apply func(*pstore.Tx, scope, T) error) func() ([]replayItem, error) {
	var (
		sub    stream.Subscription[T]
		target uint64
		last   time.Time
		ended  bool
	)
	return func() ([]replayItem, error) {
		if ended {
			return nil, nil
		}
		if sub == nil {
			var err error
			if sub, err = src(ctx, p, 1); err != nil {
				return nil, fmt.Errorf("read partition %d again: %w", p, err)
			}
		}
		for {
			recs, head, err := recvWithin(ctx, s, sub, target > 0)
			if errors.Is(err, errIdle) {
				ended = true // deleted records at the end of the partition
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("read partition %d again: %w", p, err)
			}
			if target == 0 {
				target = head
				total.Add(int64(head))
			}
			if len(recs) == 0 && head == 0 {
				ended = true
				return nil, nil
			}
			var items []replayItem
			for _, r := range recs {
				if offset(r) > target {
					ended = true
					break
				}
				// A tombstone has no time of its own: it applies where it
				// stands in its partition.
				if at := eventTime(r); at.After(last) {
					last = at
				}
				if workspace(r) != ws {
					continue
				}
				items = append(items, replayItem{at: last, apply: func(tx *pstore.Tx, sc scope) error { return apply(tx, sc, r) }})
			}
			if len(recs) > 0 && offset(recs[len(recs)-1]) >= target {
				ended = true
			}
			if len(items) > 0 || ended {
				return items, nil
			}
			if len(recs) == 0 {
				ended = true // caught up at the first batch
				return nil, nil
			}
		}
	}
}

var errIdle = errors.New("no record within the idle bound")

// recvWithin receives the next batch; once started, a partition that
// sends nothing for replayIdle is taken to be at its end.
func recvWithin[T any](ctx context.Context, s *Service, sub stream.Subscription[T], started bool) ([]T, uint64, error) {
	type res struct {
		recs []T
		head uint64
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		recs, head, err := sub.Recv()
		ch <- res{recs, head, err}
	}()
	var idle <-chan time.Time
	if started {
		idle = s.clk.After(replayIdle)
	}
	select {
	case r := <-ch:
		return r.recs, r.head, r.err
	case <-idle:
		return nil, 0, errIdle
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// mergeByTime takes the streams' records in event-time order (ties by
// stream) and hands them to apply in batches of replayBatch.
func mergeByTime(streams []*replayStream, apply func([]replayItem) error) error {
	h := &itemHeap{}
	var wg sync.WaitGroup
	errs := make([]error, len(streams))
	for i, st := range streams {
		wg.Go(func() { errs[i] = fillFirst(st) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, st := range streams {
		if len(st.buf) > 0 {
			heap.Push(h, st)
		}
	}
	batch := make([]replayItem, 0, replayBatch)
	for h.Len() > 0 {
		st := heap.Pop(h).(*replayStream)
		batch = append(batch, st.buf[0])
		st.buf = st.buf[1:]
		if err := fillFirst(st); err != nil {
			return err
		}
		if len(st.buf) > 0 {
			heap.Push(h, st)
		}
		if len(batch) == replayBatch {
			if err := apply(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return apply(batch)
	}
	return nil
}

// fillFirst loads a stream's next batch when its buffer is empty (the
// first batches of all streams are loaded at once: each is a subscription
// that answers on its own).
func fillFirst(st *replayStream) error {
	for len(st.buf) == 0 && !st.done {
		items, err := st.next()
		if err != nil {
			return err
		}
		if items == nil {
			st.done = true
			break
		}
		st.buf = items
	}
	return nil
}

// itemHeap orders streams by their next record's time.
type itemHeap []*replayStream

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	a, b := h[i].buf[0], h[j].buf[0]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return h[i].order < h[j].order
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(*replayStream)) }
func (h *itemHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
