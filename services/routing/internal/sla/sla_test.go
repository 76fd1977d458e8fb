package sla

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/hours"
)

func nyCal(t *testing.T) (*hours.Calendar, *time.Location) {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	c, err := hours.New(loc, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, loc
}

func TestSelect(t *testing.T) {
	cfg := []*routingv1.SlaPolicy{
		{Name: "mql-ent", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Segment: "enterprise", Within: durationpb.New(2 * time.Hour)},
		{Name: "mql-all", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(4 * time.Hour)},
	}
	tests := []struct {
		name    string
		typ     routingv1.HandoffType
		segment string
		want    string
		within  time.Duration
	}{
		{"segment specific", routingv1.HandoffType_HANDOFF_TYPE_MQL, "enterprise", "mql-ent", 2 * time.Hour},
		{"type wide", routingv1.HandoffType_HANDOFF_TYPE_MQL, "smb", "mql-all", 4 * time.Hour},
		{"default pql", routingv1.HandoffType_HANDOFF_TYPE_PQL, "", "default-pql-first-touch", time.Hour},
		{"default sql", routingv1.HandoffType_HANDOFF_TYPE_SQL, "", "default-sql-next-step", 16 * time.Hour},
		{"default closed won", routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON, "", "default-closed-won-kickoff", 40 * time.Hour},
		{"default renewal", routingv1.HandoffType_HANDOFF_TYPE_RENEWAL, "", "default-renewal-outreach", 16 * time.Hour},
		{"default risk", routingv1.HandoffType_HANDOFF_TYPE_RISK, "", "default-risk-outreach", 16 * time.Hour},
		{"manual has none", routingv1.HandoffType_HANDOFF_TYPE_MANUAL, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Select(cfg, tt.typ, tt.segment)
			if p.GetName() != tt.want || p.GetWithin().AsDuration() != tt.within {
				t.Fatalf("Select = %q %s, want %q %s", p.GetName(), p.GetWithin().AsDuration(), tt.want, tt.within)
			}
		})
	}
}

// TestClock walks one MQL clock (8 business hours, New York) through the
// scenarios of the issue by applying its timers in order.
func TestClock(t *testing.T) {
	cal, loc := nyCal(t)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mql := Select(nil, routingv1.HandoffType_HANDOFF_TYPE_MQL, "")
	type step struct {
		op   string // "fire", "pause", "resume", "meet"
		at   string
		want string // next timer "kind@time", "" for none
	}
	tests := []struct {
		name  string
		start string
		steps []step
		final func(t *testing.T, s *routingv1.SlaState)
	}{
		{
			name: "warnings then breach", start: "2026-11-16 09:00",
			steps: []step{
				{"next", "", "warning_50@2026-11-16 13:00"},
				{"fire", "", "warning_80@2026-11-16 15:24"},
				{"fire", "", "breach@2026-11-16 17:00"},
				{"fire", "", ""},
			},
			final: func(t *testing.T, s *routingv1.SlaState) {
				if !s.GetBreached() || s.GetUsed().AsDuration() != 8*time.Hour {
					t.Fatalf("state %v, want breached with 8h used", s)
				}
				if Meet(s, cal, at("2026-11-17 09:00")) {
					t.Fatal("a breached clock was met")
				}
			},
		},
		{
			name: "a touch from before the breach, heard after it, meets on time", start: "2026-11-16 09:00",
			steps: []step{
				{"fire", "", "warning_80@2026-11-16 15:24"},
				{"fire", "", "breach@2026-11-16 17:00"},
				{"fire", "", ""},
				{"meet", "2026-11-16 12:00", ""},
			},
			final: func(t *testing.T, s *routingv1.SlaState) {
				if s.GetBreached() || s.GetMetLate() || s.GetMetAt() == nil || s.GetUsed().AsDuration() != 3*time.Hour {
					t.Fatalf("state %v, want met on time with 3h used, not breached", s)
				}
				if s.GetWarned_50() || s.GetWarned_80() {
					t.Fatalf("state %v: warnings of a clock met at 37%% still set", s)
				}
			},
		},
		{
			name: "a touch at the due time meets on time", start: "2026-11-16 09:00",
			steps: []step{
				{"fire", "", "warning_80@2026-11-16 15:24"},
				{"fire", "", "breach@2026-11-16 17:00"},
				{"fire", "", ""},
				{"meet", "2026-11-16 17:00", ""},
			},
			final: func(t *testing.T, s *routingv1.SlaState) {
				if s.GetBreached() || s.GetUsed().AsDuration() != 8*time.Hour || !s.GetWarned_80() {
					t.Fatalf("state %v, want met on time with 8h used", s)
				}
			},
		},
		{
			name: "friday afternoon rolls over the weekend", start: "2026-11-20 15:00",
			steps: []step{
				{"next", "", "warning_50@2026-11-23 11:00"},
				{"fire", "", "warning_80@2026-11-23 13:24"},
				{"fire", "", "breach@2026-11-23 15:00"},
			},
		},
		{
			name: "pause and resume moves the deadline", start: "2026-11-16 09:00",
			steps: []step{
				{"pause", "2026-11-16 11:00", ""},
				{"resume", "2026-11-17 10:00", "warning_50@2026-11-17 12:00"},
				{"fire", "", "warning_80@2026-11-17 14:24"},
				{"pause", "2026-11-17 14:00", ""},
				{"resume", "2026-11-18 09:00", "warning_80@2026-11-18 09:24"},
				{"fire", "", "breach@2026-11-18 11:00"},
			},
			final: func(t *testing.T, s *routingv1.SlaState) {
				if s.GetDueAt().AsTime() != at("2026-11-18 11:00").UTC() {
					t.Fatalf("due %s", s.GetDueAt().AsTime())
				}
			},
		},
		{
			name: "met stops the clock", start: "2026-11-16 09:00",
			steps: []step{
				{"fire", "", "warning_80@2026-11-16 15:24"},
				{"meet", "2026-11-16 14:00", ""},
			},
			final: func(t *testing.T, s *routingv1.SlaState) {
				if s.GetMetAt() == nil || s.GetUsed().AsDuration() != 5*time.Hour {
					t.Fatalf("state %v, want met with 5h used", s)
				}
			},
		},
		{
			name: "met while paused", start: "2026-11-16 09:00",
			steps: []step{
				{"pause", "2026-11-16 10:00", ""},
				{"meet", "2026-11-16 16:00", ""},
			},
			final: func(t *testing.T, s *routingv1.SlaState) {
				if s.GetMetAt() == nil || s.GetPaused() || s.GetUsed().AsDuration() != time.Hour {
					t.Fatalf("state %v, want met, not paused, 1h used", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := at(tt.start)
			s := Start(mql, cal, ref)
			next, ok := Next(s, cal, ref)
			for i, st := range tt.steps {
				switch st.op {
				case "fire":
					if !ok {
						t.Fatalf("step %d: no timer to fire", i)
					}
					Fire(s, next)
					ref = next.At
				case "pause":
					if !Pause(s, cal, at(st.at)) {
						t.Fatalf("step %d: pause refused", i)
					}
				case "resume":
					ref = at(st.at)
					if !Resume(s, cal, ref) {
						t.Fatalf("step %d: resume refused", i)
					}
				case "meet":
					if !Meet(s, cal, at(st.at)) {
						t.Fatalf("step %d: meet refused", i)
					}
				}
				next, ok = Next(s, cal, ref)
				got := ""
				if ok {
					got = string(next.Kind) + "@" + next.At.In(loc).Format("2006-01-02 15:04")
				}
				if got != st.want {
					t.Fatalf("step %d (%s): next %q, want %q", i, st.op, got, st.want)
				}
			}
			if tt.final != nil {
				tt.final(t, s)
			}
		})
	}
}

func TestSatisfies(t *testing.T) {
	sql := &routingv1.SlaPolicy{SatisfiedBy: []string{"meeting_booked", "next_step"}}
	tests := []struct {
		name  string
		p     *routingv1.SlaPolicy
		touch string
		want  bool
	}{
		{"any touch when none listed", &routingv1.SlaPolicy{}, "contacted", true},
		{"listed touch", sql, "meeting_booked", true},
		{"unlisted touch advances only", sql, "contacted", false},
		{"disqualification always ends", sql, TouchDisqualified, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Satisfies(tt.p, tt.touch); got != tt.want {
				t.Fatalf("Satisfies = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMeetLate(t *testing.T) {
	at := time.Date(2026, 11, 17, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		state *routingv1.SlaState
		ok    bool
	}{
		{"running clock is not late", &routingv1.SlaState{}, false},
		{"met on time is not late", &routingv1.SlaState{MetAt: ts(at)}, false},
		{"breached clock is met late", &routingv1.SlaState{Breached: true}, true},
		{"met late once", &routingv1.SlaState{Breached: true, MetLate: true, MetLateAt: ts(at.Add(-time.Hour))}, false},
		{"no clock", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.state.GetMetLateAt()
			if got := MeetLate(tt.state, at); got != tt.ok {
				t.Fatalf("MeetLate = %v, want %v", got, tt.ok)
			}
			if tt.ok && (!tt.state.GetMetLate() || !tt.state.GetMetLateAt().AsTime().Equal(at) || !tt.state.GetBreached() || tt.state.GetMetAt() != nil) {
				t.Fatalf("after MeetLate: %v", tt.state)
			}
			if !tt.ok && tt.state != nil && tt.state.GetMetLateAt() != before {
				t.Fatalf("MeetLate changed met_late_at: %v", tt.state)
			}
		})
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
