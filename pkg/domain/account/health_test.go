package account

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

// healthFixture exercises the facts the health service reads: product
// counts, features, tiers, domains, departments, champions, outcomes,
// integrations and closed tickets. "now" is day 60.
func healthFixture(t testing.TB) *Aggregates {
	a := New("w", "acme")
	page := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u1", Name: "home", Timestamp: track(t, day(59), "", "x", nil).GetTimestamp()}
	events := []*ingestionv1.Event{
		group(t, day(0), map[string]any{"plan": "team", "seats": 5, "usage_limit": 1000, "champion_user_id": "u2"}),
		identify(t, day(0), "u1", map[string]any{"email": "ann@acme.com", "department": "Ops"}),
		identify(t, day(40), "u2", map[string]any{"email": "bob@acme-labs.com", "department": "Finance"}),
		identify(t, day(41), "u5", map[string]any{"email": "cy@ACME.com"}),
		track(t, day(50), "u1", "report_created", nil),
		track(t, day(51), "u1", "report_created", map[string]any{"feature": "reports"}),
		track(t, day(52), "u1", "sso_configured", map[string]any{"tier": "enterprise"}),
		track(t, day(53), "u1", "sso_configured", map[string]any{"tier": "team"}),
		track(t, day(54), "u2", "dashboard_shared", nil),
		withSource(track(t, day(54), "u2", "crm_note", nil), "crm"),
		track(t, day(55), "", "integration.connected", map[string]any{"integration": "slack"}),
		track(t, day(55), "", "integration.connected", map[string]any{"integration": "jira"}),
		track(t, day(56), "", "integration.disconnected", map[string]any{"integration": "jira"}),
		track(t, day(56), "", "support.ticket_opened", map[string]any{"ticket_id": "t1", "priority": "P1"}),
		track(t, day(57), "", "support.ticket_opened", map[string]any{"ticket_id": "t2"}),
		track(t, day(58), "", "support.ticket_closed", map[string]any{"ticket_id": "t2"}),
		track(t, day(58), "", "billing.renewed", map[string]any{"seats": 8}),
		group(t, day(59), map[string]any{"seats": 9}),
		track(t, day(59), "", "billing.churned", nil),
		page,
	}
	for _, e := range events {
		a.Apply(e, &Config{})
	}
	return a
}

func withSource(e *ingestionv1.Event, src string) *ingestionv1.Event {
	e.Source = src
	return e
}

func TestApplyHealthFacts(t *testing.T) {
	a := healthFixture(t)
	now := day(60)
	if got := a.Count("", 30, now); got != 6 {
		t.Errorf(`Count("") = %d, want 6 (5 product tracks and a page; the crm note and reserved events are not product use)`, got)
	}
	wantFeatures := map[string]int64{"report_created": day(50).Unix(), "reports": day(51).Unix(), "sso_configured": day(53).Unix(), "dashboard_shared": day(54).Unix()}
	if len(a.Features) != len(wantFeatures) {
		t.Errorf("Features = %v, want %v", a.Features, wantFeatures)
	}
	for k, v := range wantFeatures {
		if a.Features[k] != v {
			t.Errorf("Features[%q] = %d, want %d", k, a.Features[k], v)
		}
	}
	if got := a.FeaturesUsed(nil, 8, now); got != 2 {
		t.Errorf("FeaturesUsed(nil, 8d) = %d, want 2 (sso_configured, dashboard_shared)", got)
	}
	if uses := a.HigherTier["sso_configured"]; len(uses) != 1 || uses[0] != day(52).Unix() {
		t.Errorf("HigherTier = %v, want one use of sso_configured on day 52", a.HigherTier)
	}
	if len(a.Domains) != 2 || a.Domains["acme.com"] != day(0).Unix() || a.Domains["acme-labs.com"] != day(40).Unix() {
		t.Errorf("Domains = %v", a.Domains)
	}
	if len(a.Departments) != 2 || a.Departments["ops"] != day(0).Unix() || a.Departments["finance"] != day(40).Unix() {
		t.Errorf("Departments = %v", a.Departments)
	}
	if len(a.Integrations) != 1 || a.Integrations["slack"] == 0 {
		t.Errorf("Integrations = %v, want slack only", a.Integrations)
	}
	if a.OpenTickets("") != 1 || a.OpenTickets("p1") != 1 {
		t.Errorf("open tickets = %v, want t1 (p1) only", a.Tickets)
	}
	wantOutcomes := []Outcome{{OutcomeExpanded, day(58).Unix()}, {OutcomeRenewed, day(58).Unix()}, {OutcomeExpanded, day(59).Unix()}, {OutcomeChurned, day(59).Unix()}}
	if len(a.Outcomes) != len(wantOutcomes) {
		t.Fatalf("Outcomes = %v, want %v", a.Outcomes, wantOutcomes)
	}
	for i := range wantOutcomes {
		if a.Outcomes[i] != wantOutcomes[i] {
			t.Errorf("Outcomes[%d] = %v, want %v", i, a.Outcomes[i], wantOutcomes[i])
		}
	}
	if a.UsageLimit != 1000 || a.ChampionID != "u2" || !a.HasChampion() || a.ChampionLastSeen() != day(54).Unix() {
		t.Errorf("usage limit %v, champion %q (has %v, last %d)", a.UsageLimit, a.ChampionID, a.HasChampion(), a.ChampionLastSeen())
	}
}

func TestHealthFunctions(t *testing.T) {
	env, err := NewEnv(Config{})
	if err != nil {
		t.Fatal(err)
	}
	a := healthFixture(t)
	tests := []struct {
		expr string
		want float64
	}{
		{`count("", "30d")`, 6},
		{`trend("", "30d")`, 1},
		{`features_used("30d")`, 4},
		{`known_users()`, 3},
		{`days_since_champion()`, 6},
		{`usage_limit()`, 1000},
		{`integrations()`, 1},
		{`days_since_champion() <= 30.0 ? 1 : 0`, 1},
		{`open_ticket_max_age_days("P1") > 3.5 ? 1 : 0`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := env.CompileNumber(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.EvalNumber(a, day(60), nil)
			if err != nil || got != tt.want {
				t.Errorf("= %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	p, _ := env.CompileNumber(`days_since_champion()`)
	if got, _ := p.EvalNumber(New("w", "none"), day(60), nil); got != Never {
		t.Errorf("days_since_champion() without a champion = %v, want Never", got)
	}
}

// v1Fixture is fixture(t) as the version 1 codec (before the health
// facts) encoded it, written by that code.
func v1Fixture(t testing.TB) []byte {
	h, err := os.ReadFile(filepath.Join("testdata", "v1_fixture.hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnmarshalVersion1(t *testing.T) {
	got, err := Unmarshal(v1Fixture(t))
	if err != nil {
		t.Fatalf("Unmarshal(v1): %v", err)
	}
	// Version 1 knew nothing of the health facts: they decode empty.
	a := fixture(t)
	a.Outcomes, a.ChampionID, a.UsageLimit, a.ARRHistory = nil, "", 0, nil
	clear(a.Features)
	clear(a.HigherTier)
	clear(a.Domains)
	clear(a.Departments)
	for i := range a.Days {
		a.Days[i].Product = 0
	}
	if !bytes.Equal(got.Marshal(), a.Marshal()) {
		t.Error("the version 1 fixture decodes to other aggregates than fixture()")
	}
	// Its days are not framed, so UnmarshalFrom keeps them all; a version 2
	// encoding of the same account steps over the early ones.
	var s Scratch
	if part, err := s.UnmarshalFrom(v1Fixture(t), DayOf(day(50))); err != nil || len(part.Days) != len(a.Days) {
		t.Errorf("UnmarshalFrom(v1, day 50) kept %d days (%v), want all %d", len(part.Days), err, len(a.Days))
	}
	recent := 0
	for _, d := range a.Days {
		if d.Day >= DayOf(day(50)) {
			recent++
		}
	}
	if part, err := s.UnmarshalFrom(a.Marshal(), DayOf(day(50))); err != nil || len(part.Days) != recent || recent == len(a.Days) {
		t.Errorf("UnmarshalFrom(v2, day 50) kept %d days (%v), want %d of %d", len(part.Days), err, recent, len(a.Days))
	}
}

func TestScratchUnmarshal(t *testing.T) {
	var s Scratch
	inputs := [][]byte{fixture(t).Marshal(), healthFixture(t).Marshal(), New("w", "empty").Marshal(), v1Fixture(t), healthFixture(t).Marshal()}
	for i, b := range inputs {
		got, err := s.Unmarshal(b)
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		want, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		if !bytes.Equal(got.Marshal(), want.Marshal()) {
			t.Errorf("input %d: scratch decode differs from Unmarshal", i)
		}
	}
	if _, err := s.Unmarshal([]byte{codecVersion, 0xff}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt input: err = %v, want ErrCorrupt", err)
	}
	if got, err := s.Unmarshal(inputs[1]); err != nil || !bytes.Equal(got.Marshal(), inputs[1]) {
		t.Errorf("decode after a corrupt input: %v", err)
	}
}

func BenchmarkScratchUnmarshal(b *testing.B) {
	raw := healthFixture(b).Marshal()
	var s Scratch
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := s.Unmarshal(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestActiveUsersSmallAndLarge covers both ways distinct users are counted:
// the small array and, beyond 32 users, the map.
func TestActiveUsersSmallAndLarge(t *testing.T) {
	for _, users := range []int{1, 31, 32, 33, 80} {
		a := New("w", "a")
		for d := 0; d < 5; d++ {
			for u := 0; u < users; u++ {
				if (u+d)%2 == 0 || d == 4 {
					a.Apply(track(t, day(50+d), fmt.Sprintf("u%02d", u), "login", nil), &Config{})
				}
			}
		}
		if got := a.ActiveUsers(10, day(54)); got != users {
			t.Errorf("%d users: ActiveUsers = %d", users, got)
		}
		if got, want := a.ActiveUsers(1, day(53)), users/2; got != want {
			t.Errorf("%d users on day 53: ActiveUsers = %d, want %d", users, got, want)
		}
	}
}

func TestHorizon(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		days int
		ok   bool
	}{
		{`nps() > 5 && has_event("x")`, 0, true},
		{`count("x", "30d") > 0`, 30, true},
		{`count("", "60d") == 0 ? -1.0 : trend("", "30d")`, 60, true},
		{`active_users_trend("2w") > 0.0 || count_any(["a", "b"], "40d") > 1`, 40, true},
		{`seats_active_ratio() > 0.5`, 30, true},
		{`features_used("10d") > 1 && active_users("7d") > 1`, 10, true},
		{`count_after_created("x", 0, 14) > 0`, 0, false},
		{`count("x", trait("window")) > 0`, 0, false},
		{`count("x", "30d"`, 0, false},
	}
	for _, tt := range tests {
		days, ok := env.Horizon(tt.expr)
		if days != tt.days || ok != tt.ok {
			t.Errorf("Horizon(%s) = %d, %v; want %d, %v", tt.expr, days, ok, tt.days, tt.ok)
		}
	}
}

// TestUnmarshalFromWithinHorizon evaluates programs on a 200-day history
// decoded whole and decoded from exactly their horizon: same answers.
func TestUnmarshalFromWithinHorizon(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	a := New("w", "long")
	for d := 0; d < 200; d++ {
		for u := 0; u < 1+d%4; u++ {
			a.Apply(track(t, day(d), fmt.Sprintf("u%d", (u+d/30)%6), testConfig.Features[(d+u)%4], nil), &testConfig)
		}
	}
	raw := a.Marshal()
	now := day(199).Add(7 * time.Hour)
	var s Scratch
	for _, expr := range []string{
		`trend("", "30d")`, `double(count("*", "90d"))`, `double(active_users("30d"))`, `active_users_trend("2w")`,
		`double(features_used("30d"))`, `seats_active_ratio()`, `double(count_any(["report_created", "export_run"], "7d"))`,
	} {
		p, err := env.CompileNumber(expr)
		if err != nil {
			t.Fatal(err)
		}
		h, ok := env.Horizon(expr)
		if !ok {
			t.Fatalf("%s: no horizon", expr)
		}
		want, err := p.EvalNumber(a, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		part, err := s.UnmarshalFrom(raw, DayOf(now)-int32(h)+1)
		if err != nil {
			t.Fatal(err)
		}
		if len(part.Days) >= len(a.Days) {
			t.Fatalf("%s: UnmarshalFrom kept all %d days", expr, len(part.Days))
		}
		if got, err := p.EvalNumber(part, now, nil); err != nil || got != want {
			t.Errorf("%s over the last %d days = %v, %v; want %v", expr, h, got, err, want)
		}
	}
}

// yearAccount is an account active every day for 400 days: 5 users, 10
// event names a day.
func yearAccount(b *testing.B) []byte {
	a := New("w", "year")
	for d := 0; d < 400; d++ {
		for u := 0; u < 5; u++ {
			for n := 0; n < 10; n++ {
				a.Apply(track(b, day(d), fmt.Sprintf("user-%02d", u), fmt.Sprintf("event_%02d", (n+d)%15), nil), &Config{})
			}
		}
	}
	return a.Marshal()
}

// BenchmarkScratchUnmarshalYear decodes a year-long account whole, and
// from 61 days back (the default health model's and signals' reach).
func BenchmarkScratchUnmarshalYear(b *testing.B) {
	raw := yearAccount(b)
	for _, bb := range []struct {
		name string
		from int32
	}{{"all", math.MinInt32}, {"last61d", DayOf(day(399)) - 60}} {
		b.Run(bb.name, func(b *testing.B) {
			var s Scratch
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.UnmarshalFrom(raw, bb.from); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
