package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

func TestConjuncts(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`a && b`, []string{`a`, `b`}},
		{`status == "trial" && active_users("14d") >= 3 && features_used("14d") >= 2`,
			[]string{`status == "trial"`, `active_users("14d") >= 3`, `features_used("14d") >= 2`}},
		// The parser balances long chains; the order stays the source's.
		{`a && b && c && d && e`, []string{`a`, `b`, `c`, `d`, `e`}},
		{`a && (b || c) && d`, []string{`a`, `b || c`, `d`}},
		{`(a && b) && c`, []string{`a`, `b`, `c`}},
		// Only top-level && splits.
		{`a || b && c`, []string{`a || b && c`}},
		{`!(a && b)`, []string{`!(a && b)`}},
		{`stage == "trial"`, []string{`stage == "trial"`}},
		// Quotes and spacing are normalised; macros unparse as written.
		{`has(account.plan)&&account.plan=='trial'`, []string{`has(account.plan)`, `account.plan == "trial"`}},
		{`signals.exists(s, s == "a" && s != "b") && "x" in signals`, []string{`signals.exists(s, s == "a" && s != "b")`, `"x" in signals`}},
		{`a ? b && c : d`, []string{`a ? (b && c) : d`}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := Conjuncts(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " | ") != strings.Join(tt.want, " | ") {
				t.Fatalf("Conjuncts(%s) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
	for _, bad := range []string{`a &&`, `stage ==`, ``} {
		if got, err := Conjuncts(bad); err == nil {
			t.Errorf("Conjuncts(%q) = %q, want an error", bad, got)
		}
	}
}

// fitDay is the evaluation day of the fit tests.
var fitDay = time.Date(2026, 11, 16, 12, 0, 0, 0, time.UTC)

// trialAccount returns aggregates of an account that started a trial four
// days before fitDay and whose users then did what uses lists (user id,
// event name), one a day.
func trialAccount(trial bool, uses ...[2]string) *account.Aggregates {
	agg := account.New("ws", "acme")
	ev := func(user, name string, at time.Time) *ingestionv1.Event {
		return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: user, AccountId: "acme", Event: name, Timestamp: timestamppb.New(at)}
	}
	start := fitDay.AddDate(0, 0, -4)
	agg.Apply(ev("u1", "content_viewed", start.Add(-time.Hour)), &PQLConfig)
	if trial {
		agg.Apply(ev("u1", "trial_started", start), &PQLConfig)
	}
	for i, u := range uses {
		agg.Apply(ev(u[0], u[1], start.Add(time.Duration(i+1)*time.Hour)), &PQLConfig)
	}
	return agg
}

func TestExplainPQL(t *testing.T) {
	e := compile(t, &routingv1.Config{PqlRules: []*routingv1.PqlRule{
		{Name: "team-trial", Condition: `status == "trial" && active_users("14d") >= 3 && features_used("14d") >= 2`},
		{Name: "plan", Condition: `has(account.plan) && account.plan == "trial"`},
		{Name: "unguarded", Condition: `account.plan == "trial"`},
	}})
	team := [][2]string{{"u1", "report_created"}, {"u2", "dashboard_shared"}, {"u3", "report_created"}}
	type crit struct {
		met    bool
		failed bool
	}
	type want struct {
		holds    bool
		failed   bool
		criteria []crit
	}
	tests := []struct {
		name string
		p    Product
		want map[string]want
	}{
		{
			name: "a team trial holds",
			p:    Product{Aggregates: trialAccount(true, team...), Now: fitDay, Account: map[string]any{"plan": "trial"}},
			want: map[string]want{
				"team-trial": {holds: true, criteria: []crit{{met: true}, {met: true}, {met: true}}},
				"plan":       {holds: true, criteria: []crit{{met: true}, {met: true}}},
				"unguarded":  {holds: true, criteria: []crit{{met: true}}},
			},
		},
		{
			name: "two users: the active users criterion is missing",
			p:    Product{Aggregates: trialAccount(true, team[:2]...), Now: fitDay},
			want: map[string]want{
				"team-trial": {criteria: []crit{{met: true}, {}, {met: true}}},
				// The guard fails; the guarded conjunct alone errors.
				"plan":      {criteria: []crit{{}, {failed: true}}},
				"unguarded": {failed: true, criteria: []crit{{failed: true}}},
			},
		},
		{
			name: "a prospect: the status criterion is missing",
			p:    Product{Aggregates: trialAccount(false, team...), Now: fitDay},
			want: map[string]want{
				"team-trial": {criteria: []crit{{}, {met: true}, {met: true}}},
				"plan":       {criteria: []crit{{}, {failed: true}}},
				"unguarded":  {failed: true, criteria: []crit{{failed: true}}},
			},
		},
		{
			name: "content views are no features, and a month later nobody is active",
			p: Product{Aggregates: trialAccount(true, [2]string{"u1", "content_viewed"}, [2]string{"u2", "content_viewed"}, [2]string{"u3", "report_created"}),
				Now: fitDay.AddDate(0, 1, 0)},
			want: map[string]want{
				"team-trial": {criteria: []crit{{met: true}, {}, {}}},
				"plan":       {criteria: []crit{{}, {failed: true}}},
				"unguarded":  {failed: true, criteria: []crit{{failed: true}}},
			},
		},
		{
			name: "no aggregates: a prospect with nothing",
			p:    Product{Now: fitDay, Account: map[string]any{"plan": "team"}},
			want: map[string]want{
				"team-trial": {criteria: []crit{{}, {}, {}}},
				"plan":       {criteria: []crit{{met: true}, {}}},
				"unguarded":  {criteria: []crit{{}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fits := e.ExplainPQL(tt.p)
			if len(fits) != 3 || fits[0].Name != "team-trial" || fits[1].Name != "plan" || fits[2].Name != "unguarded" {
				t.Fatalf("rules %+v, want the config's three in order", fits)
			}
			for _, f := range fits {
				w := tt.want[f.Name]
				got := want{holds: f.Holds, failed: f.Err != nil}
				for _, c := range f.Criteria {
					got.criteria = append(got.criteria, crit{met: c.Met, failed: c.Err != nil})
				}
				if fmt.Sprint(got) != fmt.Sprint(w) {
					t.Errorf("%s: got %+v, want %+v (criteria %+v)", f.Name, got, w, f.Criteria)
				}
				// The whole condition holds exactly when every criterion is met.
				all := true
				for _, c := range f.Criteria {
					all = all && c.Met
				}
				if all != f.Holds {
					t.Errorf("%s: holds %v but every criterion met is %v", f.Name, f.Holds, all)
				}
			}
			// EvaluatePQL agrees with the explanation.
			_, now, _ := e.EvaluatePQL(tt.p, nil)
			var holding []string
			for _, f := range fits {
				if f.Holds {
					holding = append(holding, f.Name)
				}
			}
			slices.Sort(holding)
			if strings.Join(now, ",") != strings.Join(holding, ",") {
				t.Errorf("EvaluatePQL holds %v, ExplainPQL %v", now, holding)
			}
		})
	}
}

// TestPQLStatus checks the `status` variable through a trial's life.
func TestPQLStatus(t *testing.T) {
	e := compile(t, &routingv1.Config{PqlRules: []*routingv1.PqlRule{{Name: "trial", Condition: `status == "trial"`}}})
	agg := account.New("ws", "acme")
	steps := []struct {
		event string
		want  string
	}{
		{"content_viewed", ""},
		{"trial_started", "trial"},
		{"report_created", "trial"},
		{"trial_converted", ""},
		{"billing.churned", ""},
	}
	for i, s := range steps {
		at := fitDay.Add(time.Duration(i) * time.Hour)
		agg.Apply(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", AccountId: "acme", Event: s.event, Timestamp: timestamppb.New(at)}, &PQLConfig)
		_, now, errs := e.EvaluatePQL(Product{Aggregates: agg, Now: at}, nil)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := strings.Join(now, ","); got != s.want {
			t.Errorf("after %s (status %s): holding %q, want %q", s.event, agg.Status(), got, s.want)
		}
	}
}

// TestPQLEvaluationTimeNeverMovesBack checks that a record dated before
// the account's latest event (a stage record applied after routing folded
// later events in) evaluates as of that latest event: a rule over recent
// activity keeps holding instead of seeming to stop and firing again.
func TestPQLEvaluationTimeNeverMovesBack(t *testing.T) {
	e := compile(t, &routingv1.Config{PqlRules: []*routingv1.PqlRule{
		{Name: "team-trial", Condition: `status == "trial" && active_users("14d") >= 3`},
	}})
	agg := trialAccount(true, [2]string{"u1", "report_created"}, [2]string{"u2", "report_created"}, [2]string{"u3", "report_created"})
	last := time.Unix(agg.LastEventAt, 0).UTC()
	steps := []struct {
		name      string
		now       time.Time
		wantAt    time.Time
		wantFired string
		wantNow   string
	}{
		{"the third user's event fires", last, last, "team-trial", "team-trial"},
		{"a stage record from before the trial still holds", last.AddDate(0, 0, -10), last, "", "team-trial"},
		{"a later record sees the window move on", last.AddDate(0, 0, 20), last.AddDate(0, 0, 20), "", ""},
	}
	var holding []string
	for _, s := range steps {
		p := Product{Aggregates: agg, Now: s.now}
		if !p.At().Equal(s.wantAt) {
			t.Fatalf("%s: At %v, want %v", s.name, p.At(), s.wantAt)
		}
		fired, now, errs := e.EvaluatePQL(p, holding)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if strings.Join(fired, ",") != s.wantFired || strings.Join(now, ",") != s.wantNow {
			t.Fatalf("%s: fired %v holding %v, want %q %q", s.name, fired, now, s.wantFired, s.wantNow)
		}
		if fits := e.ExplainPQL(p); fits[0].Holds != (s.wantNow != "") {
			t.Fatalf("%s: ExplainPQL holds %v", s.name, fits[0].Holds)
		}
		holding = now
	}
}
