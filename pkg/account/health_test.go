package account

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

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

// v1Encoding re-creates the version 1 layout: version 2 without the health
// facts written at its end.
func v1Encoding(a *Aggregates) []byte {
	full := a.Marshal()
	var w writer
	w.health(a)
	return append([]byte{1}, full[1:len(full)-len(w.buf)]...)
}

func TestUnmarshalVersion1(t *testing.T) {
	a := fixture(t)
	got, err := Unmarshal(v1Encoding(a))
	if err != nil {
		t.Fatalf("Unmarshal(v1): %v", err)
	}
	// Version 1 knew nothing of the health facts: they decode empty.
	a.Outcomes, a.ChampionID, a.UsageLimit = nil, "", 0
	clear(a.Features)
	clear(a.HigherTier)
	clear(a.Domains)
	clear(a.Departments)
	for i := range a.Days {
		a.Days[i].Product = 0
	}
	if !bytes.Equal(got.Marshal(), a.Marshal()) {
		t.Error("version 1 decodes to other aggregates than it encoded")
	}
}

func TestScratchUnmarshal(t *testing.T) {
	var s Scratch
	inputs := [][]byte{fixture(t).Marshal(), healthFixture(t).Marshal(), New("w", "empty").Marshal(), v1Encoding(fixture(t)), healthFixture(t).Marshal()}
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
