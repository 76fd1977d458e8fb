package signals_test

import (
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ev(typ ingestionv1.EventType, user, name string, kv ...any) *ingestionv1.Event {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // test fixtures only
	}
	e := &ingestionv1.Event{Type: typ, UserId: user, Event: name}
	if typ == ingestionv1.EventType_EVENT_TYPE_TRACK {
		e.Properties = s
	} else {
		e.Traits = s
	}
	return e
}

func track(user, name string, kv ...any) *ingestionv1.Event {
	return ev(ingestionv1.EventType_EVENT_TYPE_TRACK, user, name, kv...)
}
func identify(user string, kv ...any) *ingestionv1.Event {
	return ev(ingestionv1.EventType_EVENT_TYPE_IDENTIFY, user, "", kv...)
}
func group(kv ...any) *ingestionv1.Event {
	return ev(ingestionv1.EventType_EVENT_TYPE_GROUP, "", "", kv...)
}

func repeat(n int, e func(i int) *ingestionv1.Event) []*ingestionv1.Event {
	out := make([]*ingestionv1.Event, n)
	for i := range out {
		out[i] = e(i)
	}
	return out
}

type transition struct {
	day  int
	open bool
}

// run drives one account through days of events with a manual clock: every
// event is applied at noon of its day and evaluated (as the consumer does),
// and the account is evaluated again at 23:00 (as the daily timer does). It
// returns every open/close transition of reason.
func run(t *testing.T, days int, events func(day int) []*ingestionv1.Event, band func(day int) healthv1.Band, reason string) []transition {
	t.Helper()
	clk := clock.NewManual(t0)
	agg := account.New("w", "acme")
	st := &signals.State{}
	prevBand := healthv1.Band_BAND_UNSPECIFIED
	var out []transition
	eval := func(day int) {
		b := healthv1.Band_BAND_HEALTHY
		if band != nil {
			b = band(day)
		}
		conds := signals.Evaluate(signals.Facts{Agg: agg, Now: clk.Now(), Band: b, PrevBand: prevBand}, st)
		prevBand = b
		for _, s := range signals.Diff("w", "acme", st, conds, clk.Now()) {
			if s.GetReason() != reason {
				continue
			}
			open := s.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN
			if open && s.GetOpenedAt().AsTime() != clk.Now() {
				continue // attribute refresh of a signal already open
			}
			if want := signals.ID("acme", s.GetKind(), reason); s.GetSignalId() != want {
				t.Fatalf("signal id %q, want %q", s.GetSignalId(), want)
			}
			out = append(out, transition{day: day, open: open})
		}
	}
	for day := 0; day <= days; day++ {
		clk.Set(t0.Add(time.Duration(day)*24*time.Hour + 12*time.Hour))
		for _, e := range events(day) {
			e.Timestamp = timestamppb.New(clk.Now())
			agg.Apply(e, &account.Config{})
			eval(day)
		}
		clk.Set(t0.Add(time.Duration(day)*24*time.Hour + 23*time.Hour))
		eval(day)
	}
	return out
}

func TestSignalsOpenAndCloseOnce(t *testing.T) {
	tests := []struct {
		name      string
		reason    string
		days      int
		events    func(day int) []*ingestionv1.Event
		band      func(day int) healthv1.Band
		open      int
		closeFrom int // close expected on a day in [closeFrom, closeTo]
		closeTo   int
	}{
		{
			// 2 events/day on days 0-59, none until day 80, then 6/day. Last 30 days
			// vs the 30 before: 2*(89-d) against 60 drops below -30% at day 69.
			name: "usage drop", reason: signals.UsageDrop, days: 100,
			events: func(d int) []*ingestionv1.Event {
				switch {
				case d < 60:
					return repeat(2, func(int) *ingestionv1.Event { return track("u1", "report_created") })
				case d >= 80:
					return repeat(6, func(int) *ingestionv1.Event { return track("u1", "report_created") })
				}
				return nil
			},
			open: 69, closeFrom: 80, closeTo: 90,
		},
		{
			name: "single active user after 30 days", reason: signals.SingleActiveUser, days: 60,
			events: func(d int) []*ingestionv1.Event {
				if d == 40 {
					return []*ingestionv1.Event{track("u1", "x"), track("u2", "x")}
				}
				return []*ingestionv1.Event{track("u1", "x")}
			},
			open: 30, closeFrom: 40, closeTo: 40,
		},
		{
			name: "fewer than 3 features", reason: signals.LowFeatureAdoption, days: 60,
			events: func(d int) []*ingestionv1.Event {
				out := []*ingestionv1.Event{track("u1", "f1"), track("u2", "f1")}
				if d == 40 {
					out = append(out, track("u1", "f2"), track("u1", "f3"))
				}
				return out
			},
			open: 30, closeFrom: 40, closeTo: 40,
		},
		{
			name: "unresolved P1 older than 7 days", reason: signals.P1TicketAging, days: 20,
			events: func(d int) []*ingestionv1.Event {
				switch d {
				case 0:
					return []*ingestionv1.Event{track("u1", "support.ticket_opened", "ticket_id", "T1", "priority", "P1"),
						track("u1", "support.ticket_opened", "ticket_id", "T2", "priority", "P3")}
				case 10:
					return []*ingestionv1.Event{track("u1", "support.ticket_resolved", "ticket_id", "T1")}
				}
				return nil
			},
			open: 7, closeFrom: 10, closeTo: 10,
		},
		{
			// champion last active day 5 at noon; more than 30 days later is day 35 23:00.
			name: "champion inactive 30 days", reason: signals.ChampionInactive, days: 60,
			events: func(d int) []*ingestionv1.Event {
				out := []*ingestionv1.Event{track("u2", "x")}
				if d == 0 {
					out = append(out, identify("u1", "role", "champion"))
				}
				if d <= 5 || d == 45 {
					out = append(out, track("u1", "x"))
				}
				return out
			},
			open: 35, closeFrom: 45, closeTo: 45,
		},
		{
			name: "nps detractor", reason: signals.NPSDetractor, days: 20,
			events: func(d int) []*ingestionv1.Event {
				switch d {
				case 3:
					return []*ingestionv1.Event{track("u1", "survey.nps", "score", 5)}
				case 6:
					return []*ingestionv1.Event{track("u1", "survey.nps", "score", 4)}
				case 10:
					return []*ingestionv1.Event{track("u1", "survey.nps", "score", 9)}
				}
				return nil
			},
			open: 3, closeFrom: 10, closeTo: 10,
		},
		{
			name: "score dropped a band", reason: signals.BandDrop, days: 40,
			events: func(int) []*ingestionv1.Event { return nil },
			band: func(d int) healthv1.Band {
				switch {
				case d < 10:
					return healthv1.Band_BAND_HEALTHY
				case d < 20:
					return healthv1.Band_BAND_NEUTRAL
				case d < 25:
					return healthv1.Band_BAND_AT_RISK
				case d < 30:
					return healthv1.Band_BAND_NEUTRAL
				}
				return healthv1.Band_BAND_HEALTHY
			},
			open: 10, closeFrom: 30, closeTo: 30,
		},
		{
			name: "seat utilization above 80%", reason: signals.SeatUtilization, days: 20,
			events: func(d int) []*ingestionv1.Event {
				switch d {
				case 0:
					return []*ingestionv1.Event{group("seats", 10), track("u0", "x")}
				case 5:
					return repeat(8, func(i int) *ingestionv1.Event { return track(fmt.Sprintf("u%d", i+1), "x") })
				case 10:
					return []*ingestionv1.Event{group("seats", 20)}
				}
				return nil
			},
			open: 5, closeFrom: 10, closeTo: 10,
		},
		{
			// 10 events a day against a limit of 100: the 80th falls on day 7.
			name: "usage approaching plan limit", reason: signals.UsageNearLimit, days: 20,
			events: func(d int) []*ingestionv1.Event {
				out := repeat(10, func(int) *ingestionv1.Event { return track("u1", "x") })
				switch d {
				case 0:
					out = append([]*ingestionv1.Event{group("usage_limit", 100)}, out...)
				case 12:
					out = append([]*ingestionv1.Event{group("usage_limit", 1000)}, out...)
				}
				return out
			},
			open: 7, closeFrom: 12, closeTo: 12,
		},
		{
			name: "new email domain", reason: signals.NewEmailDomain, days: 80,
			events: func(d int) []*ingestionv1.Event {
				switch d {
				case 0:
					return []*ingestionv1.Event{identify("u1", "email", "a@acme.com")}
				case 40:
					return []*ingestionv1.Event{identify("u2", "email", "b@acme.io")}
				case 50:
					return []*ingestionv1.Event{identify("u3", "email", "c@acme.io")}
				}
				return nil
			},
			open: 40, closeFrom: 69, closeTo: 70,
		},
		{
			name: "new department", reason: signals.NewDepartment, days: 80,
			events: func(d int) []*ingestionv1.Event {
				switch d {
				case 0:
					return []*ingestionv1.Event{identify("u1", "department", "Engineering")}
				case 40:
					return []*ingestionv1.Event{identify("u2", "department", "Finance")}
				}
				return nil
			},
			open: 40, closeFrom: 69, closeTo: 70,
		},
		{
			name: "repeated higher-tier feature", reason: signals.HigherTierFeature, days: 50,
			events: func(d int) []*ingestionv1.Event {
				switch {
				case d == 0:
					return []*ingestionv1.Event{group("plan", "pro")}
				case d >= 5 && d <= 7:
					return []*ingestionv1.Event{track("u1", "sso_configured", "tier", "enterprise")}
				}
				return nil
			},
			open: 7, closeFrom: 35, closeTo: 35,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, tt.days, tt.events, tt.band, tt.reason)
			if len(got) != 2 || !got[0].open || got[1].open {
				t.Fatalf("transitions %+v, want exactly one open then one close", got)
			}
			if got[0].day != tt.open {
				t.Errorf("opened on day %d, want %d", got[0].day, tt.open)
			}
			if got[1].day < tt.closeFrom || got[1].day > tt.closeTo {
				t.Errorf("closed on day %d, want %d..%d", got[1].day, tt.closeFrom, tt.closeTo)
			}
		})
	}
}

func TestRenewalPlays(t *testing.T) {
	h, n, r := healthv1.Band_BAND_HEALTHY, healthv1.Band_BAND_NEUTRAL, healthv1.Band_BAND_AT_RISK
	tests := []struct {
		name     string
		daysLeft float64
		band     healthv1.Band
		reason   string // "" = no window
		play     string
	}{
		{"too early", 121, h, "", ""},
		{"past end", -1, r, "", ""},
		{"healthy at 120 is monitored", 110, h, "renewal_window_120", signals.PlayMonitor},
		{"healthy at 90 renews automatically", 90, h, "renewal_window_90", signals.PlayAutomated},
		{"healthy at 30", 10, h, "renewal_window_30", signals.PlayAutomated},
		{"at risk starts a business review at 120", 120, r, "renewal_window_120", signals.PlayStrategic},
		{"at risk at 60", 45, r, "renewal_window_60", signals.PlayStrategic},
		{"neutral at 120 is monitored", 100, n, "renewal_window_120", signals.PlayMonitor},
		{"neutral standard at 90", 61, n, "renewal_window_90", signals.PlayStandard},
		{"neutral standard at 60", 60, n, "renewal_window_60", signals.PlayStandard},
		{"neutral standard at 30", 0, n, "renewal_window_30", signals.PlayStandard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := signals.Renewal(tt.daysLeft, tt.band)
			if ok != (tt.reason != "") || c.Reason != tt.reason || c.Attributes["play"] != tt.play {
				t.Fatalf("got %v %q play %q, want %q play %q", ok, c.Reason, c.Attributes["play"], tt.reason, tt.play)
			}
		})
	}
}

// TestRenewalWindowsOverTime walks a contract to its end with a manual clock
// and checks each window opens and closes exactly once with the band's play.
func TestRenewalWindowsOverTime(t *testing.T) {
	end := t0.Add(130 * 24 * time.Hour).Format(time.RFC3339)
	for _, tt := range []struct {
		band healthv1.Band
		play map[string]string
	}{
		{healthv1.Band_BAND_HEALTHY, map[string]string{"renewal_window_120": signals.PlayMonitor, "renewal_window_90": signals.PlayAutomated, "renewal_window_60": signals.PlayAutomated, "renewal_window_30": signals.PlayAutomated}},
		{healthv1.Band_BAND_NEUTRAL, map[string]string{"renewal_window_120": signals.PlayMonitor, "renewal_window_90": signals.PlayStandard, "renewal_window_60": signals.PlayStandard, "renewal_window_30": signals.PlayStandard}},
		{healthv1.Band_BAND_AT_RISK, map[string]string{"renewal_window_120": signals.PlayStrategic, "renewal_window_90": signals.PlayStrategic, "renewal_window_60": signals.PlayStrategic, "renewal_window_30": signals.PlayStrategic}},
	} {
		t.Run(tt.band.String(), func(t *testing.T) {
			clk := clock.NewManual(t0)
			agg := account.New("w", "acme")
			e := group("contract_end", end)
			e.Timestamp = timestamppb.New(t0)
			agg.Apply(e, &account.Config{})
			st := &signals.State{}
			opened := map[string]int{}
			closed := map[string]int{}
			for h := 0; h <= 140*24; h += 6 {
				clk.Set(t0.Add(time.Duration(h) * time.Hour))
				conds := signals.Evaluate(signals.Facts{Agg: agg, Now: clk.Now(), Band: tt.band, PrevBand: tt.band}, st)
				for _, s := range signals.Diff("w", "acme", st, conds, clk.Now()) {
					if s.GetKind() != commonv1.SignalKind_SIGNAL_KIND_RENEWAL {
						continue
					}
					if s.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN {
						opened[s.GetReason()]++
						if p := s.GetAttributes()["play"]; p != tt.play[s.GetReason()] {
							t.Errorf("%s play %q, want %q", s.GetReason(), p, tt.play[s.GetReason()])
						}
					} else {
						closed[s.GetReason()]++
					}
				}
			}
			for _, w := range signals.Windows() {
				r := signals.RenewalReason(w)
				if opened[r] != 1 || closed[r] != 1 {
					t.Errorf("%s opened %d closed %d times, want 1 and 1", r, opened[r], closed[r])
				}
			}
		})
	}
}
