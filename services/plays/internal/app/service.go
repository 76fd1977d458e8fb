// Package app is the plays service's application: the consumers of the
// stages, health and routing logs that match plays and write firings,
// tasks and the delivery outbox in the consumer's transaction
// (consume.go, fire.go); the task timers (timers.go); the delivery engine's
// wiring (outbox.go); the use cases behind cairn.plays.v1 (this file); and
// the process wiring (Parse, Run).
package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/page"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	"github.com/cairn-dev/cairn/services/plays/internal/play"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// Options configure a Service.
type Options struct {
	DB     *pstore.DB
	Clock  clock.Clock
	Logger *slog.Logger
	// Engine delivers the outbox; the Service feeds it destinations and
	// messages and records its outcomes (Record).
	Engine *deliver.Engine
	// Policy is the destination address policy, checked when a file is
	// applied (the engine checks it again at connect time).
	Policy deliver.Policy
	// DashboardURL is the base of the account links in messages.
	DashboardURL string
	// TaskExpiry is how long an open task may stay past its due date
	// before it expires; zero means 14 days.
	TaskExpiry time.Duration
	// Directory gives owners' business hours for due dates; nil counts
	// calendar time.
	Directory *Directory
	// Sources are the upstream logs a replay reads; nil refuses replays.
	Sources *Sources
}

// Service is the plays application.
type Service struct {
	db           *pstore.DB
	clk          clock.Clock
	logger       *slog.Logger
	engine       *deliver.Engine
	policy       deliver.Policy
	dashboardURL string
	taskExpiry   time.Duration
	directory    *Directory
	sources      *Sources
	replays      sync.WaitGroup

	mu   sync.Mutex
	sets map[setKey]*play.Set
}

type setKey struct {
	ws      string
	version uint32
}

// New returns a Service.
func New(o Options) *Service {
	if o.TaskExpiry <= 0 {
		o.TaskExpiry = 14 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{
		db: o.DB, clk: o.Clock, logger: o.Logger, engine: o.Engine, policy: o.Policy,
		dashboardURL: strings.TrimRight(o.DashboardURL, "/"), taskExpiry: o.TaskExpiry, directory: o.Directory, sources: o.Sources,
		sets: map[setKey]*play.Set{},
	}
}

// compile parses and compiles a plays file.
func (s *Service) compile(yaml string) (*play.Set, error) {
	return play.Load([]byte(yaml), func(u string) error { return deliver.CheckURL(u, s.policy) })
}

// activeSet returns the workspace's active compiled plays and their
// version, or nil when none is applied. Compiled sets are cached by
// version; versions never change once stored.
func (s *Service) activeSet(t *store.Tx) (*play.Set, uint32, error) {
	p, ok, err := store.Versions.Find(t.Base(), t.Workspace(), store.Slot)
	if err != nil || !ok {
		return nil, 0, err
	}
	key := setKey{t.Workspace(), p.Version}
	s.mu.Lock()
	set := s.sets[key]
	s.mu.Unlock()
	if set != nil {
		return set, p.Version, nil
	}
	stored, err := store.Versions.Get(t.Base(), t.Workspace(), p.ID, p.Version)
	if err != nil {
		return nil, 0, err
	}
	set, err = s.compile(stored.GetYaml())
	if err != nil {
		// A stored version compiled when it was applied; failing now
		// means the address policy changed. Plays stop rather than
		// deliver somewhere the policy refuses.
		return nil, 0, fmt.Errorf("plays version %d of workspace %q no longer compiles: %w", p.Version, t.Workspace(), err)
	}
	s.mu.Lock()
	s.sets[key] = set
	s.mu.Unlock()
	return set, p.Version, nil
}

// ApplyPlays validates a plays file and stores it as the next active
// version; an identical file stores nothing.
func (s *Service) ApplyPlays(ctx context.Context, ws, yaml string, dryRun bool) (*playsv1.PlaysVersion, bool, error) {
	set, err := s.compile(yaml)
	if err != nil {
		return nil, false, err
	}
	v := summarize(ws, set)
	v.AppliedAt = timestamppb.New(s.clk.Now())
	if dryRun {
		return v, false, nil
	}
	canon := string(set.Canonical())
	type result struct {
		v         *playsv1.PlaysVersion
		unchanged bool
	}
	res, err := pstore.CommitValue(ctx, s.db, func(tx *pstore.Tx) (result, error) {
		latest, err := store.Versions.Latest(tx, ws, store.Slot)
		if err != nil {
			return result{}, err
		}
		if p, ok, err := store.Versions.Find(tx, ws, store.Slot); err != nil {
			return result{}, err
		} else if ok {
			prev, err := store.Versions.Get(tx, ws, p.ID, p.Version)
			if err != nil {
				return result{}, err
			}
			if pf, err := play.Parse([]byte(prev.GetYaml())); err == nil && string(play.Canonical(pf)) == canon {
				// Comments and layout aside, the same file: no new version.
				return result{prev.GetPlays(), true}, nil
			}
		}
		nv := proto.Clone(v).(*playsv1.PlaysVersion)
		nv.Version = latest + 1
		if err := store.Versions.Put(tx, ws, store.Slot, nv.Version, &playsv1.GetPlaysResponse{Plays: nv, Yaml: yaml}); err != nil {
			return result{}, err
		}
		if err := store.Versions.SetActive(tx, ws, store.Slot, store.Slot, nv.Version); err != nil {
			return result{}, err
		}
		return result{nv, false}, nil
	})
	if err != nil {
		return nil, false, err
	}
	if !res.unchanged {
		s.mu.Lock()
		s.sets[setKey{ws, res.v.GetVersion()}] = set
		s.mu.Unlock()
		if err := s.syncDestinations(); err != nil {
			return nil, false, err
		}
	}
	return res.v, res.unchanged, nil
}

// summarize describes a compiled file for the API: plays, destinations
// without secrets, and the playbooks available.
func summarize(ws string, set *play.Set) *playsv1.PlaysVersion {
	v := &playsv1.PlaysVersion{Workspace: ws}
	for _, p := range set.Plays() {
		ps := &playsv1.PlaySummary{PlayId: p.ID, Name: p.Name, On: slices.Clone(p.On), When: p.When, Conditions: p.Conditions}
		if p.Cooldown > 0 {
			ps.Cooldown = durationpb.New(p.Cooldown)
		}
		for _, a := range p.Actions {
			ps.Actions = append(ps.Actions, actionSummary(a))
		}
		v.Plays = append(v.Plays, ps)
	}
	for _, d := range set.Destinations() {
		v.Destinations = append(v.Destinations, &playsv1.Destination{
			DestinationId: d.ID, Type: d.Type, Url: d.URL, Signed: d.Secret != "", Concurrency: int32(d.Concurrency),
		})
	}
	// The built-in playbooks are always available; then the file's own.
	v.Playbooks = []string{play.PlaybookRenewal, play.PlaybookOnboarding}
	for _, pb := range set.Playbooks() {
		v.Playbooks = append(v.Playbooks, pb.ID)
	}
	return v
}

func actionSummary(a play.Action) string {
	switch a.Type {
	case "task":
		if a.Task.Due <= 0 {
			return fmt.Sprintf("task: %s (%s, no due date)", a.Task.Title, a.Task.Owner)
		}
		return fmt.Sprintf("task: %s (%s, due in %s)", a.Task.Title, a.Task.Owner, play.FormatDuration(a.Task.Due))
	case "playbook":
		return "playbook: " + a.Playbook.ID
	case "content":
		c := a.ContentID
		if c == "" {
			c = a.URL
		}
		return fmt.Sprintf("content: %s to %s", c, a.Destination.ID)
	}
	return a.Type + ": " + a.Destination.ID
}

// GetPlays returns the active plays file with its secrets redacted.
func (s *Service) GetPlays(ws string) (*playsv1.GetPlaysResponse, error) {
	var out *playsv1.GetPlaysResponse
	err := s.db.View(func(tx *pstore.Tx) error {
		p, ok, err := store.Versions.Find(tx, ws, store.Slot)
		if err != nil {
			return err
		}
		if !ok {
			return apierr.NotFound("workspace %q has no plays: apply a plays file with cairn apply -f plays.yaml", ws)
		}
		stored, err := store.Versions.Get(tx, ws, p.ID, p.Version)
		if err != nil {
			return err
		}
		out = &playsv1.GetPlaysResponse{Plays: stored.GetPlays(), Yaml: play.Redact(stored.GetYaml())}
		return nil
	})
	return out, err
}

// ListTasks pages tasks soonest due first.
func (s *Service) ListTasks(ws string, req *playsv1.ListTasksRequest, after []byte, size int) (out []*playsv1.Task, last []byte, more bool, err error) {
	keep := func(k *playsv1.Task) bool {
		return (req.GetAccountId() == "" || k.GetAccountId() == req.GetAccountId()) &&
			(req.GetOwnerId() == "" || k.GetOwnerId() == req.GetOwnerId()) &&
			(req.GetState() == playsv1.TaskState_TASK_STATE_UNSPECIFIED || k.GetState() == req.GetState())
	}
	err = s.db.View(func(tx *pstore.Tx) error {
		out, last, more, err = page.Collect(size, keep, func(visit func([]byte, *playsv1.Task) (bool, error)) error {
			return store.In(tx, ws).Tasks(after, visit)
		})
		return err
	})
	return out, last, more, err
}

// UpdateTask closes a task as done or skipped, or reopens it.
func (s *Service) UpdateTask(ctx context.Context, ws, id string, state playsv1.TaskState, note, actor string) (*playsv1.Task, error) {
	return pstore.CommitValue(ctx, s.db, func(tx *pstore.Tx) (*playsv1.Task, error) {
		t := store.In(tx, ws)
		k, err := t.Task(id)
		if err != nil {
			return nil, err
		}
		if k == nil {
			return nil, apierr.NotFound("task %q not found", id)
		}
		now := s.clk.Now()
		if state == playsv1.TaskState_TASK_STATE_OPEN {
			if k.GetState() == playsv1.TaskState_TASK_STATE_OPEN || k.GetState() == playsv1.TaskState_TASK_STATE_SCHEDULED {
				return nil, apierr.FailedPrecondition("task %q is already %s", id, taskWord(k.GetState()))
			}
			k.State, k.ClosedAt, k.ClosedBy = playsv1.TaskState_TASK_STATE_OPEN, nil, ""
			if k.GetDueAt() != nil {
				if err := t.AddTimer(maxTime(now, k.GetDueAt().AsTime()).Add(s.taskExpiry), id, store.TimerExpire); err != nil {
					return nil, err
				}
			}
		} else {
			if k.GetState() != playsv1.TaskState_TASK_STATE_OPEN && k.GetState() != playsv1.TaskState_TASK_STATE_SCHEDULED {
				return nil, apierr.FailedPrecondition("task %q is already %s; reopen it first (state TASK_STATE_OPEN)", id, taskWord(k.GetState()))
			}
			k.State, k.ClosedAt, k.ClosedBy = state, timestamppb.New(now), actor
		}
		if note != "" {
			k.Note = note
		}
		return k, t.PutTask(k)
	})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func taskWord(s playsv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

// ListFirings pages firings newest first.
func (s *Service) ListFirings(ws string, req *playsv1.ListFiringsRequest, after []byte, size int) (out []*playsv1.Firing, last []byte, more bool, err error) {
	keep := func(f *playsv1.Firing) bool {
		return (req.GetAccountId() == "" || f.GetAccountId() == req.GetAccountId()) &&
			(req.GetPlayId() == "" || f.GetPlayId() == req.GetPlayId())
	}
	err = s.db.View(func(tx *pstore.Tx) error {
		out, last, more, err = page.Collect(size, keep, func(visit func([]byte, *playsv1.Firing) (bool, error)) error {
			return store.In(tx, ws).Firings(after, visit)
		})
		return err
	})
	return out, last, more, err
}

// ListDeliveries pages the delivery log newest first.
func (s *Service) ListDeliveries(ws string, req *playsv1.ListDeliveriesRequest, after []byte, size int) (out []*playsv1.Delivery, last []byte, more bool, err error) {
	keep := func(d *playsv1.Delivery) bool {
		return (req.GetAccountId() == "" || d.GetAccountId() == req.GetAccountId()) &&
			(req.GetDestinationId() == "" || d.GetDestinationId() == req.GetDestinationId()) &&
			(req.GetState() == playsv1.DeliveryState_DELIVERY_STATE_UNSPECIFIED || d.GetState() == req.GetState())
	}
	err = s.db.View(func(tx *pstore.Tx) error {
		out, last, more, err = page.Collect(size, keep, func(visit func([]byte, *playsv1.Delivery) (bool, error)) error {
			return store.In(tx, ws).DeliveryLog(after, visit)
		})
		return err
	})
	return out, last, more, err
}
