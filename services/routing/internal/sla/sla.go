// Package sla runs an assignment's SLA clock on its owner's business-hours
// calendar: policy selection with defaults, warnings at 50% and 80%, breach,
// pause/resume and touches.
//
// While a clock runs, SlaState.used is the business time used as of a
// reference instant the caller knows (the start, the last resume, or the due
// time of the last timer that fired) and due_at is when it runs out; the time
// used at any later instant is allowed - BusinessBetween(now, due_at). This
// keeps the state inside the contract's SlaState message.
package sla

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/hours"
)

// Kind is an SLA event kind, as published in SlaEvent.kind.
type Kind string

// SLA event kinds.
const (
	Warning50  Kind = "warning_50"
	Warning80  Kind = "warning_80"
	Breach     Kind = "breach"
	Escalation Kind = "escalation"
	Met        Kind = "met"
	// MetLate is a satisfying touch after the breach.
	MetLate Kind = "met_late"
	// ManagerNotified carries the breaching owner's manager in owner_id.
	ManagerNotified Kind = "manager_notified"
)

// BusinessDay is the business time of one default working day.
const BusinessDay = 8 * time.Hour

// Touch types that have a fixed meaning.
const (
	// TouchDisqualified closes the assignment.
	TouchDisqualified = "disqualified"
)

// Defaults are the built-in policies used when a workspace config has none
// for a handoff type.
func Defaults() []*routingv1.SlaPolicy {
	p := func(name string, t routingv1.HandoffType, d time.Duration) *routingv1.SlaPolicy {
		return &routingv1.SlaPolicy{Name: name, Type: t, Within: durationpb.New(d), NotifyManager: true}
	}
	return []*routingv1.SlaPolicy{
		p("default-pql-first-touch", routingv1.HandoffType_HANDOFF_TYPE_PQL, time.Hour),
		p("default-mql-first-touch", routingv1.HandoffType_HANDOFF_TYPE_MQL, BusinessDay),
		p("default-sql-next-step", routingv1.HandoffType_HANDOFF_TYPE_SQL, 2*BusinessDay),
		p("default-closed-won-kickoff", routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON, 5*BusinessDay),
		p("default-renewal-outreach", routingv1.HandoffType_HANDOFF_TYPE_RENEWAL, 2*BusinessDay),
		p("default-risk-outreach", routingv1.HandoffType_HANDOFF_TYPE_RISK, 2*BusinessDay),
	}
}

// Select picks the policy for a handoff: a configured policy for the type and
// segment, else a configured one for the type and every segment, else the
// default. It returns nil when none applies (e.g. manual handoffs).
func Select(configured []*routingv1.SlaPolicy, t routingv1.HandoffType, segment string) *routingv1.SlaPolicy {
	var general *routingv1.SlaPolicy
	for _, p := range configured {
		if p.GetType() != t {
			continue
		}
		if segment != "" && p.GetSegment() == segment {
			return p
		}
		if p.GetSegment() == "" && general == nil {
			general = p
		}
	}
	if general != nil {
		return general
	}
	for _, p := range Defaults() {
		if p.GetType() == t {
			return p
		}
	}
	return nil
}

// Timer is the next SLA event of a running clock.
type Timer struct {
	// Kind is the event that fires.
	Kind Kind
	// At is when it fires.
	At time.Time
}

// Start starts a clock at now.
func Start(p *routingv1.SlaPolicy, cal *hours.Calendar, now time.Time) *routingv1.SlaState {
	allowed := p.GetWithin().AsDuration()
	return &routingv1.SlaState{
		Policy:  p.GetName(),
		Allowed: durationpb.New(allowed),
		Used:    durationpb.New(0),
		DueAt:   timestamppb.New(cal.AddBusiness(now, allowed)),
	}
}

// Running reports whether the clock can still fire.
func Running(s *routingv1.SlaState) bool {
	return s != nil && !s.GetBreached() && !s.GetPaused() && s.GetMetAt() == nil
}

// Next returns the next timer of a running clock, given the instant ref at
// which s.used was measured.
func Next(s *routingv1.SlaState, cal *hours.Calendar, ref time.Time) (Timer, bool) {
	if !Running(s) {
		return Timer{}, false
	}
	allowed := s.GetAllowed().AsDuration()
	used := s.GetUsed().AsDuration()
	switch {
	case !s.GetWarned_50():
		return Timer{Kind: Warning50, At: cal.AddBusiness(ref, allowed/2-used)}, true
	case !s.GetWarned_80():
		return Timer{Kind: Warning80, At: cal.AddBusiness(ref, allowed*8/10-used)}, true
	}
	return Timer{Kind: Breach, At: s.GetDueAt().AsTime()}, true
}

// Fire applies a timer that fell due. The timer's own due time (not the
// possibly later instant it was processed at) is the new reference, so a
// restart after downtime does not shift later warnings or the breach.
func Fire(s *routingv1.SlaState, t Timer) {
	allowed := s.GetAllowed().AsDuration()
	switch t.Kind {
	case Warning50:
		s.Warned_50 = true
		s.Used = durationpb.New(allowed / 2)
	case Warning80:
		s.Warned_50, s.Warned_80 = true, true
		s.Used = durationpb.New(allowed * 8 / 10)
	case Breach:
		s.Warned_50, s.Warned_80, s.Breached = true, true, true
		s.Used = durationpb.New(allowed)
	}
}

// Used is the business time used at now.
func Used(s *routingv1.SlaState, cal *hours.Calendar, now time.Time) time.Duration {
	if !Running(s) {
		return s.GetUsed().AsDuration()
	}
	allowed := s.GetAllowed().AsDuration()
	used := allowed - cal.BusinessBetween(now, s.GetDueAt().AsTime())
	return min(max(used, s.GetUsed().AsDuration()), allowed)
}

// Pause stops the clock at now; it reports false if it was not running.
func Pause(s *routingv1.SlaState, cal *hours.Calendar, now time.Time) bool {
	if !Running(s) {
		return false
	}
	s.Used = durationpb.New(Used(s, cal, now))
	s.Paused = true
	return true
}

// Resume restarts a paused clock at now, moving the due time by the paused
// interval; it reports false if the clock was not paused.
func Resume(s *routingv1.SlaState, cal *hours.Calendar, now time.Time) bool {
	if s == nil || !s.GetPaused() {
		return false
	}
	s.Paused = false
	left := s.GetAllowed().AsDuration() - s.GetUsed().AsDuration()
	s.DueAt = timestamppb.New(cal.AddBusiness(now, left))
	return true
}

// Satisfies reports whether a touch type meets the policy: any touch when the
// policy lists none, otherwise one of those listed. Disqualification always
// ends the clock.
func Satisfies(p *routingv1.SlaPolicy, touch string) bool {
	if touch == TouchDisqualified || len(p.GetSatisfiedBy()) == 0 {
		return true
	}
	return slices.Contains(p.GetSatisfiedBy(), touch)
}

// Meet stops a running or paused clock as met at now. A clock that breached
// before now stays breached; Meet then reports false.
//
// A breached clock whose touch happened at or before its due time was met
// on time: the touch reached routing after the breach timer had fired (a
// CRM sync that lags, a replay, events sent out of order). The SLA is
// judged by when the owner acted, not by when routing heard of it, so the
// breach (and any late touch recorded since) is withdrawn; the breach event
// stays in the log as what routing believed then.
func Meet(s *routingv1.SlaState, cal *hours.Calendar, now time.Time) bool {
	if s == nil || s.GetMetAt() != nil {
		return false
	}
	if s.GetBreached() {
		due := s.GetDueAt().AsTime()
		if now.After(due) {
			return false
		}
		allowed := s.GetAllowed().AsDuration()
		used := min(max(allowed-cal.BusinessBetween(now, due), 0), allowed)
		s.Breached, s.MetLate, s.MetLateAt, s.Paused = false, false, nil, false
		s.Warned_50, s.Warned_80 = used >= allowed/2, used >= allowed*8/10
		s.Used = durationpb.New(used)
		s.MetAt = timestamppb.New(now)
		return true
	}
	if !s.GetPaused() {
		s.Used = durationpb.New(Used(s, cal, now))
	}
	s.Paused = false
	s.MetAt = timestamppb.New(now)
	return true
}

// MeetLate records a satisfying touch at now on a breached clock that had
// not been met late yet; it reports false for any other clock. The clock
// stays breached (the SLA was missed) and met_at stays unset.
func MeetLate(s *routingv1.SlaState, now time.Time) bool {
	if s == nil || !s.GetBreached() || s.GetMetAt() != nil || s.GetMetLate() {
		return false
	}
	s.MetLate = true
	s.MetLateAt = timestamppb.New(now)
	return true
}
