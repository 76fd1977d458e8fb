package journey

import (
	"slices"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// Causes recorded on transitions.
const (
	// CauseEvent is a move triggered by an ingested event.
	CauseEvent = "event"
	// CauseTimer is a move triggered by a durable timer.
	CauseTimer = "timer"
	// CauseReplay is a move found while replaying history.
	CauseReplay = "replay"
	// CauseRegression is a move back because the stage's entry criteria stopped holding.
	CauseRegression = "regression"
	// CauseChurn is an account leaving the journey because its status
	// became churned: the transition's to_stage is empty.
	CauseChurn = "churn"
	// CauseWinBack is the placement of a churned account that was won back.
	CauseWinBack = "win_back"
)

// ClosedChurned is the closed_reason attribute of a signal closed because
// the account churned.
const ClosedChurned = "churned"

// NoBehaviouralEvent is the not-placed reason of an account that sent only
// identify or group calls.
const NoBehaviouralEvent = "no_behavioural_event"

// State is an account's position in one journey.
type State struct {
	// Stage is the current stage id; empty before the first placement.
	Stage string
	// EnteredAt is when the account entered Stage.
	EnteredAt time.Time
	// Open are the names of the current stage's drop-off criteria whose signal is open.
	Open []string
}

// Move is one stage change.
type Move struct {
	// From is empty for the first placement.
	From, To string
	// Cause is one of the Cause constants.
	Cause string
	// Criteria are the results that justified the move: the exit criteria of
	// From and the entry criteria of To.
	Criteria []*stagesv1.CriterionResult
}

// SignalChange opens or closes a drop-off signal.
type SignalChange struct {
	// Stage and Name identify the drop-off criterion.
	Stage, Name string
	// Description of the criterion, for the signal message.
	Description string
	// Open is true when the signal opens, false when it closes.
	Open bool
	// ClosedReason, on a close, is why it closed when not because the
	// criterion stopped holding (e.g. ClosedChurned); recorded as the
	// signal's closed_reason attribute.
	ClosedReason string
}

// Reason is the signal's machine-readable reason, "<stage>.<criterion>".
func (s SignalChange) Reason() string { return s.Stage + "." + s.Name }

// Outcome is the result of evaluating one account.
type Outcome struct {
	// State is the new state.
	State State
	// Moves are the stage changes, in order.
	Moves []Move
	// Signals opened or closed, in order.
	Signals []SignalChange
	// NextCheck is when a durable timer should evaluate the account again
	// without an event; zero when the account is not placed.
	NextCheck time.Time
}

// Evaluator evaluates accounts against one journey. Reuse one per goroutine;
// it is not safe for concurrent use.
type Evaluator struct {
	j    *Journey
	ev   *account.Evaluator
	vars map[string]any
	agg  *account.Aggregates
	now  time.Time
	// stageIDs are the stages' ids as VarStage values, boxed once.
	stageIDs []any
	// visited and met are scratch space of Evaluate and dropoffs.
	visited []bool
	met     []bool
}

// NewEvaluator returns an evaluator for the journey.
func (j *Journey) NewEvaluator() *Evaluator {
	e := &Evaluator{j: j, ev: j.env.NewEvaluator(), vars: map[string]any{VarStage: "", VarDaysInStage: int64(0)},
		stageIDs: make([]any, len(j.Stages)), visited: make([]bool, len(j.Stages))}
	for i, s := range j.Stages {
		e.stageIDs[i] = s.Def.GetId()
	}
	return e
}

// bind points the CEL evaluator at stage s entered at entered.
func (e *Evaluator) bind(s *Stage, entered time.Time) {
	e.vars[VarStage] = e.stageIDs[s.Index]
	days := int64(0)
	if !entered.IsZero() && e.now.After(entered) {
		days = int64(e.now.Sub(entered) / (24 * time.Hour))
	}
	e.vars[VarDaysInStage] = days
	e.ev.Reset(e.agg, e.now, e.vars)
}

// holds evaluates a list of criteria for stage s entered at entered. An
// evaluation error counts as not met, so a broken criterion cannot stall an
// account or the service. With results, the result of every criterion is
// appended to *results.
func (e *Evaluator) holds(s *Stage, list []*Criterion, entered time.Time, results *[]*stagesv1.CriterionResult) bool {
	if results == nil {
		return e.allHold(s, list, entered)
	}
	e.bind(s, entered)
	all := true
	for _, c := range list {
		ok, err := c.prog.Bool(e.ev)
		if err != nil {
			ok = false
		}
		r := &stagesv1.CriterionResult{Name: c.Name, Expr: c.Expr, Met: ok, Description: c.Description}
		if err != nil {
			r.Error = err.Error()
		}
		*results = append(*results, r)
		if !ok {
			all = false
		}
	}
	return all
}

// allHold is holds without results: it stops at the first criterion that
// does not hold.
func (e *Evaluator) allHold(s *Stage, list []*Criterion, entered time.Time) bool {
	if len(list) == 0 {
		return true
	}
	e.bind(s, entered)
	for _, c := range list {
		if ok, err := c.prog.Bool(e.ev); err != nil || !ok {
			return false
		}
	}
	return true
}

// holdsAll is holds for lists whose results only matter when every
// criterion holds (the criteria that justify a move): it evaluates until
// the first criterion that does not hold, and only then builds the results,
// which are then all met and without error, as holds would have found them.
func (e *Evaluator) holdsAll(s *Stage, list []*Criterion, entered time.Time, results *[]*stagesv1.CriterionResult) bool {
	if !e.allHold(s, list, entered) {
		return false
	}
	for _, c := range list {
		*results = append(*results, &stagesv1.CriterionResult{Name: c.Name, Expr: c.Expr, Met: true, Description: c.Description})
	}
	return true
}

// Evaluate places the account, moves it as the definition allows, and opens
// or closes drop-off signals, at time now. cause is CauseEvent, CauseTimer or
// CauseReplay; regressions are recorded as CauseRegression.
//
// Rules (docs/journeys.md):
//   - First placement: the furthest stage with entry criteria that all hold;
//     the first stage when none does and it has no entry criteria.
//   - Progress: when the current stage has exit criteria and all hold, move to
//     the first of [next stage, allowed moves...] whose entry criteria hold
//     (this is how renewal loops back each contract term).
//   - Catch-up: an account in a stage without entry criteria (a catch-all
//     such as Awareness) moves to the furthest later stage whose entry
//     criteria hold, so evidence such as a signed contract places it.
//   - Regression: otherwise, when the current stage has entry criteria and
//     they no longer hold, move to the furthest earlier allowed move whose
//     entry holds.
//   - Each stage is entered at most once per evaluation, so loops terminate.
func (e *Evaluator) Evaluate(a *account.Aggregates, st State, now time.Time, cause string) Outcome {
	e.agg, e.now = a, now
	defer func() { e.agg = nil; e.ev.Reset(nil, time.Time{}, nil) }()
	j := e.j
	out := Outcome{State: st}
	cur, placed := j.index[st.Stage]
	if !placed {
		// The stage vanished from the definition, or this is the first event.
		out.State = State{}
		pick := -1
		var res []*stagesv1.CriterionResult
		for i := len(j.Stages) - 1; i >= 0; i-- {
			s := j.Stages[i]
			if len(s.Entry) == 0 && i > 0 {
				continue
			}
			var r []*stagesv1.CriterionResult
			if e.holdsAll(s, s.Entry, time.Time{}, &r) {
				pick, res = i, r
				break
			}
		}
		if pick < 0 {
			return out
		}
		e.move(&out, pick, cause, res)
		cur = pick
	}
	visited := e.visited
	clear(visited)
	visited[cur] = true
	for steps := 0; steps < len(j.Stages); steps++ {
		s := j.Stages[cur]
		next := -1
		var res []*stagesv1.CriterionResult
		moveCause := cause
		if len(s.Exit) > 0 {
			var exitRes []*stagesv1.CriterionResult
			if e.holdsAll(s, s.Exit, out.State.EnteredAt, &exitRes) {
				targets := make([]int, 0, 1+len(s.Moves))
				if cur+1 < len(j.Stages) {
					targets = append(targets, cur+1)
				}
				targets = append(targets, s.Moves...)
				for _, m := range targets {
					if visited[m] {
						continue
					}
					t := j.Stages[m]
					r := append([]*stagesv1.CriterionResult(nil), exitRes...)
					if e.holdsAll(t, t.Entry, time.Time{}, &r) {
						next, res = m, r
						break
					}
				}
			}
		}
		if next < 0 && len(s.Entry) == 0 {
			// A stage without entry criteria is a catch-all: evidence that
			// a later stage's entry criteria hold moves the account there.
			for i := len(j.Stages) - 1; i > cur; i-- {
				t := j.Stages[i]
				if len(t.Entry) == 0 || visited[i] {
					continue
				}
				var r []*stagesv1.CriterionResult
				if e.holdsAll(t, t.Entry, time.Time{}, &r) {
					next, res = i, r
					break
				}
			}
		}
		if next < 0 && len(s.Entry) > 0 && e.hasEarlierMove(s) && !e.holds(s, s.Entry, out.State.EnteredAt, nil) {
			for _, m := range s.Moves {
				t := j.Stages[m]
				if m >= cur || visited[m] || (next >= 0 && m < next) {
					continue
				}
				var r []*stagesv1.CriterionResult
				if e.holdsAll(t, t.Entry, time.Time{}, &r) {
					next, res, moveCause = m, r, CauseRegression
				}
			}
		}
		if next < 0 {
			break
		}
		e.move(&out, next, moveCause, res)
		visited[next] = true
		cur = next
	}
	e.dropoffs(&out, j.Stages[cur])
	out.NextCheck = e.nextCheck(j.Stages[cur], out.State)
	return out
}

func (e *Evaluator) hasEarlierMove(s *Stage) bool {
	for _, m := range s.Moves {
		if m < s.Index {
			return true
		}
	}
	return false
}

func (e *Evaluator) move(out *Outcome, to int, cause string, res []*stagesv1.CriterionResult) {
	from := out.State.Stage
	for _, name := range out.State.Open {
		out.Signals = append(out.Signals, SignalChange{Stage: from, Name: name, Description: e.description(from, name), Open: false})
	}
	id := e.j.Stages[to].Def.GetId()
	out.Moves = append(out.Moves, Move{From: from, To: id, Cause: cause, Criteria: res})
	out.State = State{Stage: id, EnteredAt: e.now}
}

func (e *Evaluator) description(stage, name string) string {
	if s := e.j.Stage(stage); s != nil {
		for _, c := range s.Dropoff {
			if c.Name == name {
				return c.Description
			}
		}
	}
	return ""
}

func (e *Evaluator) dropoffs(out *Outcome, s *Stage) {
	if len(s.Dropoff) == 0 && len(out.State.Open) == 0 {
		return
	}
	// Every drop-off criterion is evaluated, as holds with results does;
	// only whether each is met is read.
	met := e.met[:0]
	if len(s.Dropoff) > 0 {
		e.bind(s, out.State.EnteredAt)
	}
	for _, c := range s.Dropoff {
		ok, err := c.prog.Bool(e.ev)
		met = append(met, ok && err == nil)
	}
	e.met = met
	var now []string
	for i, c := range s.Dropoff {
		open := slices.Contains(out.State.Open, c.Name)
		switch {
		case met[i] && !open:
			out.Signals = append(out.Signals, SignalChange{Stage: s.Def.GetId(), Name: c.Name, Description: c.Description, Open: true})
		case !met[i] && open:
			out.Signals = append(out.Signals, SignalChange{Stage: s.Def.GetId(), Name: c.Name, Description: c.Description, Open: false})
		}
		if met[i] {
			now = append(now, c.Name)
		}
	}
	// Signals of criteria removed from the definition close too.
	for _, n := range out.State.Open {
		if !slices.ContainsFunc(s.Dropoff, func(c *Criterion) bool { return c.Name == n }) {
			out.Signals = append(out.Signals, SignalChange{Stage: s.Def.GetId(), Name: n, Open: false})
		}
	}
	out.State.Open = now
}

// nextCheck is the earliest pending check_after deadline of the stage's
// drop-off criteria, else the next UTC midnight: time-driven criteria (a
// renewal window, days in stage) are re-evaluated at least daily without
// events. Midnight alignment keeps the timer unchanged across a day's events.
func (e *Evaluator) nextCheck(s *Stage, st State) time.Time {
	next := e.now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	for _, c := range s.Dropoff {
		if c.CheckAfter <= 0 {
			continue
		}
		due := st.EnteredAt.Add(c.CheckAfter)
		if due.After(e.now) && due.Before(next) {
			next = due
		}
	}
	return next
}

// NotPlaced explains why an account that is in no stage is not placed at
// now: the names of the journey's first stage's entry criteria that do not
// hold, else NoBehaviouralEvent (placement waits for a track, page or
// screen event).
func (e *Evaluator) NotPlaced(a *account.Aggregates, now time.Time) []string {
	if len(e.j.Stages) == 0 {
		return nil
	}
	e.agg, e.now = a, now
	defer func() { e.agg = nil; e.ev.Reset(nil, time.Time{}, nil) }()
	s := e.j.Stages[0]
	var res []*stagesv1.CriterionResult
	e.holds(s, s.Entry, time.Time{}, &res)
	var out []string
	for _, r := range res {
		if !r.GetMet() {
			out = append(out, r.GetName())
		}
	}
	if len(out) == 0 {
		out = append(out, NoBehaviouralEvent)
	}
	return out
}

// Explain evaluates the current stage's exit and drop-off criteria at now,
// for "what's left" answers.
func (e *Evaluator) Explain(a *account.Aggregates, st State, now time.Time) (exit, dropoff []*stagesv1.CriterionResult) {
	s := e.j.Stage(st.Stage)
	if s == nil {
		return nil, nil
	}
	e.agg, e.now = a, now
	defer func() { e.agg = nil; e.ev.Reset(nil, time.Time{}, nil) }()
	e.holds(s, s.Exit, st.EnteredAt, &exit)
	e.holds(s, s.Dropoff, st.EnteredAt, &dropoff)
	return exit, dropoff
}
