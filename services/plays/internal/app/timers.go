package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/plays/internal/play"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// timerBatch is how many due timers fire per transaction.
const timerBatch = 1000

// timerPoll is how often the timer loop looks for due timers.
const timerPoll = time.Second

// RunTimers opens scheduled playbook steps and expires tasks left open
// past their due date, until ctx ends. Each timer fires exactly once: it
// is removed in the transaction that changes the task.
func (s *Service) RunTimers(ctx context.Context) error {
	for {
		if _, err := s.FireTimers(ctx, s.clk.Now()); err != nil && ctx.Err() == nil {
			s.logger.Error("plays: timers", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clk.After(timerPoll):
		}
	}
}

// FireTimers fires every timer due at or before now and returns how many
// fired.
func (s *Service) FireTimers(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		n, err := pstore.CommitValue(ctx, s.db, func(tx *pstore.Tx) (int, error) {
			due, err := store.DueTimers(tx, now, timerBatch)
			if err != nil {
				return 0, err
			}
			for _, tm := range due {
				if err := s.fireTimer(store.In(tx, tm.Workspace), tm); err != nil {
					return 0, fmt.Errorf("timer %s of task %s: %w", tm.Kind, tm.Task, err)
				}
			}
			return len(due), nil
		})
		total += n
		if err != nil || n < timerBatch {
			return total, err
		}
	}
}

func (s *Service) fireTimer(t *store.Tx, tm store.Timer) error {
	k, err := t.Task(tm.Task)
	if err != nil || k == nil {
		return err // a forgotten account's task
	}
	switch tm.Kind {
	case store.TimerOpen:
		if k.GetState() != playsv1.TaskState_TASK_STATE_SCHEDULED {
			return nil
		}
		a, err := t.Account(k.GetAccountId())
		if err != nil {
			return err
		}
		skip, why, err := s.skipStep(t, k, a)
		if err != nil {
			return err
		}
		if skip {
			k.State, k.ClosedAt, k.ClosedBy, k.Note = playsv1.TaskState_TASK_STATE_SKIPPED, timestamppb.New(tm.At), "plays", why
			return t.PutTask(k)
		}
		k.State = playsv1.TaskState_TASK_STATE_OPEN
		if k.GetOwnerId() == "" {
			k.OwnerId = resolveOwner(a, k.GetOwnerRole())
		}
		if err := s.armExpiry(t, k); err != nil {
			return err
		}
		return t.PutTask(k)
	case store.TimerExpire:
		if k.GetState() != playsv1.TaskState_TASK_STATE_OPEN {
			return nil
		}
		k.State, k.ClosedAt, k.ClosedBy = playsv1.TaskState_TASK_STATE_EXPIRED, timestamppb.New(tm.At), "plays"
		k.Note = fmt.Sprintf("not closed within %s of its due date", play.FormatDuration(s.taskExpiry))
		return t.PutTask(k)
	}
	return nil
}

// skipStep reports whether a scheduled playbook step no longer applies
// when it falls due: the account churned, or the step's skip condition
// holds.
func (s *Service) skipStep(t *store.Tx, k *playsv1.Task, a *store.Account) (bool, string, error) {
	if a.Status == "churned" {
		return true, "the account churned", nil
	}
	if k.GetPlaybookId() == "" {
		return false, "", nil
	}
	set, _, err := s.activeSet(t)
	if err != nil || set == nil {
		return false, "", err
	}
	pb, ok := set.Playbook(k.GetPlaybookId())
	if !ok {
		return false, "", nil
	}
	// Steps are found by title: the task's step number counts the steps
	// of its run, which depend on the band and window it started with.
	i := slices.IndexFunc(pb.Steps, func(st play.Step) bool { return st.Title == k.GetTitle() })
	if i < 0 || pb.Steps[i].SkipIf == "" {
		return false, "", nil
	}
	st := pb.Steps[i]
	skip, err := set.Skip(st, a.Map())
	if err != nil {
		// A skip condition that cannot be evaluated leaves the step
		// open: a person can judge it, a missed step cannot be undone.
		s.logger.Warn("plays: skip_if", "task", k.GetTaskId(), "err", err)
		return false, "", nil
	}
	if skip {
		return true, "skip_if held: " + st.SkipIf, nil
	}
	return false, "", nil
}
