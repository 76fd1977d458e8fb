package account

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

// t0 is the fixed origin of every test timeline: a Monday at noon UTC.
var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	if m == nil {
		return nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatalf("struct: %v", err)
	}
	return s
}

func track(t testing.TB, at time.Time, user, name string, props map[string]any) *ingestionv1.Event {
	src := "product"
	if i := strings.IndexByte(name, '.'); i > 0 {
		src = name[:i]
	}
	return &ingestionv1.Event{
		Workspace: "w", AccountId: "acme", Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
		UserId: user, Event: name, Source: src, Timestamp: timestamppb.New(at),
		Properties: mustStruct(t, props),
	}
}

func identify(t testing.TB, at time.Time, user string, traits map[string]any) *ingestionv1.Event {
	return &ingestionv1.Event{
		Workspace: "w", AccountId: "acme", Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY,
		UserId: user, Timestamp: timestamppb.New(at), Traits: mustStruct(t, traits),
	}
}

func group(t testing.TB, at time.Time, traits map[string]any) *ingestionv1.Event {
	return &ingestionv1.Event{
		Workspace: "w", AccountId: "acme", Type: ingestionv1.EventType_EVENT_TYPE_GROUP,
		GroupId: "acme", Timestamp: timestamppb.New(at), Traits: mustStruct(t, traits),
	}
}

var testConfig = Config{
	Features:          []string{"report_created", "dashboard_shared", "export_run", "alert_set"},
	IntegrationEvents: []string{"integration_connected"},
}

// fixture is one account's history used by the function tests; "now" is day 60.
func fixture(t testing.TB) *Aggregates {
	a := New("w", "acme")
	cfg := testConfig
	events := []*ingestionv1.Event{
		group(t, day(0), map[string]any{"name": "Acme", "plan": "team", "segment": "mid-market", "owner": "jo", "created_at": day(0).Format(time.RFC3339), "industry": "retail"}),
		track(t, day(0), "", "billing.contract_updated", map[string]any{"seats": 10, "arr": 12000.5, "contract_start": day(1).Format("2006-01-02"), "contract_end": day(1).AddDate(1, 0, 0).Format(time.RFC3339)}),
		identify(t, day(0), "u1", map[string]any{"email": "Ann@Acme.COM", "persona": "champion", "title": "Ops lead"}),
		identify(t, day(0), "u2", map[string]any{"email": "bob@acme.com", "title": "CFO"}),
		identify(t, day(0), "u3", map[string]any{"department": "IT Security"}),
		track(t, day(1), "u1", "login", nil),
		track(t, day(2), "u1", "report_created", nil),
		track(t, day(2), "u1", "report_created", nil),
		track(t, day(10), "u2", "dashboard_shared", nil),
		track(t, day(20), "u1", "integration_connected", map[string]any{"integration": "slack"}),
		track(t, day(21), "u1", "integration_connected", map[string]any{"integration": "jira"}),
		track(t, day(21), "u1", "integration_connected", map[string]any{"integration": "slack"}),
		track(t, day(40), "u1", "report_created", nil),
		track(t, day(50), "u1", "report_created", nil),
		track(t, day(55), "u4", "report_created", nil),
		track(t, day(56), "u3", "export_run", nil),
		track(t, day(57), "u1", "report_created", nil),
		track(t, day(58), "", "survey.nps", map[string]any{"score": 9}),
		track(t, day(59), "", "survey.nps", map[string]any{"score": 4}),
		track(t, day(30), "", "support.ticket_opened", map[string]any{"ticket_id": "t1", "priority": "P1"}),
		track(t, day(45), "", "support.ticket_opened", map[string]any{"ticket_id": "t2", "priority": "p2"}),
		track(t, day(46), "", "support.ticket_opened", map[string]any{"ticket_id": "t3", "priority": "p2"}),
		track(t, day(47), "", "support.ticket_resolved", map[string]any{"ticket_id": "t3"}),
		track(t, day(52), "", "billing.contract_updated", map[string]any{"seats": 15, "plan": "business"}),
	}
	for _, e := range events {
		a.Apply(e, &cfg)
	}
	return a
}

func TestApply(t *testing.T) {
	a := fixture(t)
	now := day(60)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"seats from latest contract update", a.Seats, int64(15)},
		{"arr", a.ARR, 12000.5},
		{"plan upgraded", a.Traits["plan"], "business"},
		{"segment", a.Traits["segment"], "mid-market"},
		{"owner", a.Traits["owner"], "jo"},
		{"created_at", a.CreatedAt, day(0).Unix()},
		{"contract start from date", a.ContractStart, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC).Unix()},
		{"contract end", a.ContractEnd, day(1).AddDate(1, 0, 0).Unix()},
		{"latest nps", a.NPS, int32(4)},
		{"integrations are a set", len(a.Integrations), 2},
		{"resolved ticket removed", len(a.Tickets), 2},
		{"ticket priority lower-cased", a.Tickets["t1"].Priority, "p1"},
		{"email domain", a.Users["u1"].EmailDomain, "acme.com"},
		{"users", len(a.Users), 4},
		{"report count all time", a.Count("report_created", 400, now), int64(6)},
		{"first seen", a.Events["report_created"].First, day(2).Unix()},
		{"last seen", a.Events["report_created"].Last, day(57).Unix()},
		{"seats increased recorded", a.Count(EventSeatsIncreased, 30, now), int64(1)},
		{"plan change recorded", a.Count(EventPlanChanged, 30, now), int64(1)},
		{"support events are not activity", a.ActiveUsers(400, now), 4},
		{"persona explicit", PersonaOf(a.Users["u1"]), PersonaChampion},
		{"persona from title", PersonaOf(a.Users["u2"]), PersonaEconomicBuyer},
		{"persona from department", PersonaOf(a.Users["u3"]), PersonaITSecurity},
		{"persona default", PersonaOf(a.Users["u4"]), PersonaEndUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v (%T), want %v (%T)", tt.got, tt.got, tt.want, tt.want)
			}
		})
	}
}

func TestApplyBounds(t *testing.T) {
	tests := []struct {
		name  string
		apply func(a *Aggregates)
		check func(t *testing.T, a *Aggregates)
	}{
		{
			name: "old days pruned",
			apply: func(a *Aggregates) {
				for d := 0; d < 500; d += 10 {
					a.Apply(track(t, day(d), "u", "x", nil), nil)
				}
			},
			check: func(t *testing.T, a *Aggregates) {
				last := DayOf(day(490))
				if first := a.Days[0].Day; first <= last-KeepDays {
					t.Errorf("oldest day %d kept, want > %d", first, last-KeepDays)
				}
				for _, d := range a.Days {
					if d.Day <= last-KeepUserDays && len(d.Users) > 0 {
						t.Errorf("day %d keeps %d user ids past %d days", d.Day, len(d.Users), KeepUserDays)
					}
				}
			},
		},
		{
			name: "users per day capped",
			apply: func(a *Aggregates) {
				for i := 0; i < MaxUsersPerDay+50; i++ {
					a.Apply(track(t, day(0), fmt.Sprintf("u%05d", i), "x", nil), nil)
				}
			},
			check: func(t *testing.T, a *Aggregates) {
				if n := len(a.Days[0].Users); n != MaxUsersPerDay {
					t.Errorf("day users = %d, want %d", n, MaxUsersPerDay)
				}
			},
		},
		{
			name: "out of order events land in their day",
			apply: func(a *Aggregates) {
				a.Apply(track(t, day(5), "u", "x", nil), nil)
				a.Apply(track(t, day(1), "u", "x", nil), nil)
				a.Apply(track(t, day(3), "u", "x", nil), nil)
			},
			check: func(t *testing.T, a *Aggregates) {
				var days []int32
				for _, d := range a.Days {
					days = append(days, d.Day)
				}
				want := []int32{DayOf(day(1)), DayOf(day(3)), DayOf(day(5))}
				if fmt.Sprint(days) != fmt.Sprint(want) {
					t.Errorf("days = %v, want %v", days, want)
				}
				if a.Events["x"].First != day(1).Unix() {
					t.Errorf("first = %d, want %d", a.Events["x"].First, day(1).Unix())
				}
			},
		},
		{
			name: "activity events from config",
			apply: func(a *Aggregates) {
				cfg := Config{ActivityEvents: []string{"login"}}
				a.Apply(track(t, day(0), "u1", "login", nil), &cfg)
				a.Apply(track(t, day(0), "u2", "report_created", nil), &cfg)
			},
			check: func(t *testing.T, a *Aggregates) {
				if n := a.ActiveUsers(1, day(0)); n != 1 {
					t.Errorf("active users = %d, want 1", n)
				}
			},
		},
		{
			name: "forget user",
			apply: func(a *Aggregates) {
				a.Apply(track(t, day(0), "u1", "x", nil), nil)
				a.Apply(track(t, day(0), "u2", "x", nil), nil)
				a.ForgetUser("u1")
			},
			check: func(t *testing.T, a *Aggregates) {
				if _, ok := a.Users["u1"]; ok {
					t.Error("user u1 still present")
				}
				if got := a.Days[0].Users; len(got) != 1 || got[0] != "u2" {
					t.Errorf("day users = %v, want [u2]", got)
				}
			},
		},
		{
			name: "garbage properties ignored",
			apply: func(a *Aggregates) {
				a.Apply(track(t, day(0), "", "billing.contract_updated", map[string]any{"seats": "lots", "arr": []any{1}, "contract_end": "soon"}), nil)
				a.Apply(track(t, day(0), "", "survey.nps", map[string]any{"score": 42}), nil)
				a.Apply(track(t, day(0), "", "support.ticket_opened", map[string]any{"priority": "p1"}), nil)
			},
			check: func(t *testing.T, a *Aggregates) {
				if a.Seats != 0 || a.ARR != 0 || a.ContractEnd != 0 || a.NPS != -1 || len(a.Tickets) != 0 {
					t.Errorf("state changed by garbage: seats=%d arr=%v end=%d nps=%d tickets=%d", a.Seats, a.ARR, a.ContractEnd, a.NPS, len(a.Tickets))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New("w", "acme")
			tt.apply(a)
			tt.check(t, a)
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		agg  func(t *testing.T) *Aggregates
	}{
		{"empty", func(t *testing.T) *Aggregates { return New("w", "a") }},
		{"fixture", func(t *testing.T) *Aggregates { return fixture(t) }},
		{"busy account", func(t *testing.T) *Aggregates {
			a := New("w", "busy")
			for d := 0; d < 120; d++ {
				for u := 0; u < 20; u++ {
					a.Apply(track(t, day(d), fmt.Sprintf("user-%02d", u), testConfig.Features[(d+u)%4], nil), &testConfig)
				}
			}
			t.Logf("busy account (120 days x 20 users x 1 event): %d bytes", len(a.Marshal()))
			return a
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.agg(t)
			b := a.Marshal()
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if b2 := got.Marshal(); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs: %d vs %d bytes", len(b), len(b2))
			}
			now := day(60)
			if got.Count(EventAny, 400, now) != a.Count(EventAny, 400, now) || got.ActiveUsers(120, now) != a.ActiveUsers(120, now) {
				t.Error("decoded aggregates answer differently")
			}
		})
	}
}

func TestUnmarshalCorrupt(t *testing.T) {
	good := fixture(t).Marshal()
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)/2]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"huge length", []byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Unmarshal(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(New("w", "a").Marshal())
	f.Add(fixture(f).Marshal())
	f.Add([]byte{codecVersion, 1, 'w'})
	f.Add(healthFixture(f).Marshal())
	f.Add(v1Fixture(f))
	var s Scratch
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Unmarshal(b)
		sa, serr := s.Unmarshal(b)
		if (err == nil) != (serr == nil) {
			t.Fatalf("Unmarshal err %v, Scratch.Unmarshal err %v", err, serr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(a.Marshal(), sa.Marshal()) {
			t.Fatal("Scratch.Unmarshal decodes differently")
		}
		if !bytes.Equal(a.Marshal(), marshalReference(a)) {
			t.Fatal("Marshal differs from the reference encoder")
		}
		if part, err := s.UnmarshalFrom(b, DayOf(day(30))); err == nil {
			part.Count(EventAny, 30, day(60))
			part.ActiveUsers(30, day(60))
		}
		// Whatever decodes must re-encode and answer queries without panicking.
		_ = a.Marshal()
		now := day(60)
		a.Count(EventAny, 30, now)
		a.ActiveUsers(30, now)
		a.Apply(track(t, now, "u", "x", nil), &testConfig)
	})
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{"14d", 14, ""},
		{"4w", 28, ""},
		{"400d", 400, ""},
		{"1d", 1, ""},
		{"401d", 0, "longer than"},
		{"0d", 0, "positive"},
		{"-3d", 0, "positive"},
		{"3m", 0, "unit"},
		{"d", 0, "want a number"},
		{"", 0, "want a number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWindow(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestFunctions(t *testing.T) {
	env, err := NewEnv(testConfig, cel.Variable("stage", cel.StringType), cel.Variable("days_in_stage", cel.IntType))
	if err != nil {
		t.Fatal(err)
	}
	a := fixture(t)
	now := day(60)
	vars := map[string]any{"stage": "adoption", "days_in_stage": 12}
	tests := []struct {
		expr string
		want bool
	}{
		{`count("report_created", "14d") == 3`, true}, // days 50, 55, 57
		{`count("report_created", "2w") == 3`, true},
		{`count("report_created", "1d") == 0`, true},
		{`count("*", "7d") == 5`, true}, // 55, 56, 57, nps 58, nps 59
		{`count("nope", "400d") == 0`, true},
		{`count_any(["report_created", "export_run"], "14d") == 4`, true},
		{`count_after_created("report_created", 0, 14) == 2`, true},
		{`count_after_created("report_created", 46, 60) == 3`, true},
		{`days_since_contract_start() == 59`, true},
		{`has_event("login") && !has_event("never")`, true},
		{`first_seen("report_created") == timestamp("2026-03-04T12:00:00Z")`, true},
		{`last_seen("report_created") == timestamp("2026-04-28T12:00:00Z")`, true},
		{`days_since("report_created") == 3`, true},
		{`days_since("never") == 100000`, true},
		{`days_since("*") == 1`, true},
		{`active_users("7d") == 3`, true}, // u4 day 55, u3 day 56, u1 day 57
		{`active_users("30d") == 3`, true},
		{`active_users("60d") == 4`, true},
		{`active_users_trend("7d") == 2.0`, true}, // 3 vs 1 (u1 day 50)
		{`new_users("90d") == 4`, true},
		{`new_users("7d") == 1`, true},
		{`features_used("14d") == 2`, true},
		{`features_used("60d") == 3`, true},
		{`integrations() == 2`, true},
		{`seats() == 15`, true},
		{`seats_active_ratio() == 0.2`, true},
		{`days_since_created() == 60`, true},
		{`days_since_contract_start() == 59`, true},
		{`days_until_contract_end() == 306`, true},
		{`trait("industry") == "retail" && trait("nope") == ""`, true},
		{`arr() > 12000.0`, true},
		{`plan() == "business" && segment() == "mid-market"`, true},
		{`nps() == 4`, true},
		{`open_tickets("") == 2 && open_tickets("P1") == 1 && open_tickets("p3") == 0`, true},
		{`open_ticket_max_age_days("p1") == 30 && open_ticket_max_age_days("p2") == 15 && open_ticket_max_age_days("p4") == 0`, true},
		{`trend("report_created", "14d") == 2.0`, true}, // 3 vs 1 (day 40)
		{`trend("never", "14d") == 0.0`, true},
		{`trend("export_run", "14d") == 1.0`, true},
		{`persona_days_since("champion") == 3 && persona_days_since("procurement") == 100000`, true},
		{`persona_days_since("economic_buyer") == 50`, true},
		{`stage == "adoption" && days_in_stage > 10`, true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := env.CompileBool(tt.expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := p.EvalBool(a, now, vars)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFunctionsOnEmptyAccount(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []string{
		`nps() == -1`,
		`days_since_contract_start() == -1`,
		`days_until_contract_end() == 100000`,
		`days_since_created() == 0`,
		`seats_active_ratio() == 0.0`,
		`active_users("30d") == 0`,
		`first_seen("x") == timestamp("1970-01-01T00:00:00Z")`,
	}
	for _, expr := range tests {
		t.Run(expr, func(t *testing.T) {
			p, err := env.CompileBool(expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if got, err := p.EvalBool(nil, day(0), nil); err != nil || !got {
				t.Errorf("got %v, %v; want true", got, err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, expr, want string
	}{
		{"bad window literal", `count("x", "14x") > 1`, `1:12: window "14x": unit must be d`},
		{"window too long", `active_users("2000d") > 1`, `1:14: window "2000d": longer than the 400 days kept`},
		{"unknown function", `foo() > 1`, `undeclared reference to 'foo'`},
		{"wrong arity", `count("x") > 1`, `found no matching overload for 'count'`},
		{"syntax", `count("x", "1d") >`, `1:19: Syntax error`},
		{"not bool", `count("x", "1d")`, `returns int, want bool`},
		{"not number", `plan()`, `returns string, want int or double`},
		{"empty", `  `, `expression is empty`},
		{"too long", strings.Repeat("1 + ", 1100) + "1 > 0", "longer than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compile := env.CompileBool
			if tt.name == "not number" {
				compile = env.CompileNumber
			}
			_, err := compile(tt.expr)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CompileError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want containing %q", err, tt.want)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		expr string
	}{
		{"nested comprehensions over aggregates", `[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, active_users("30d") >= 0)))`},
		{"string blow-up", `[1,2,3,4,5,6,7,8,9,10].map(x, [1,2,3,4,5,6,7,8,9,10].map(y, [1,2,3,4,5,6,7,8,9,10].map(z, [1,2,3,4,5,6,7,8,9,10].map(w, "aaaaaaaaaaaaaaaa" + string(x))))).size() > 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := env.CompileBool(tt.expr)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			_, err = p.EvalBool(fixture(t), day(60), nil)
			if !errors.Is(err, ErrCostLimit) {
				t.Errorf("err = %v, want ErrCostLimit", err)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		want float64
	}{
		{`active_users("60d")`, 4},
		{`seats_active_ratio() * 100.0`, 20},
		{`double(count("report_created", "400d")) / 4.0`, 1.5},
	}
	a := fixture(t)
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := env.CompileNumber(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.EvalNumber(a, day(60), nil)
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestEvaluatorReuse(t *testing.T) {
	env, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CompileBool(`count("report_created", "400d") > 2`)
	if err != nil {
		t.Fatal(err)
	}
	ev := env.NewEvaluator()
	tests := []struct {
		name string
		agg  *Aggregates
		want bool
	}{
		{"busy", fixture(t), true},
		{"empty", New("w", "b"), false},
		{"busy again", fixture(t), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev.Reset(tt.agg, day(60), nil)
			got, err := p.Bool(ev)
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	other, err := NewEnv(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bool(other.NewEvaluator()); err == nil {
		t.Error("evaluating with another environment's evaluator succeeded")
	}
}

func BenchmarkEvaluate20(b *testing.B) {
	env, err := NewEnv(testConfig)
	if err != nil {
		b.Fatal(err)
	}
	exprs := []string{
		`count("report_created", "14d") >= 3`, `active_users("30d") >= 3`, `features_used("30d") >= 3`,
		`integrations() >= 1`, `seats_active_ratio() < 0.6`, `days_until_contract_end() < 90`,
		`nps() >= 0 && nps() < 7`, `open_tickets("p1") > 0`, `trend("*", "30d") < -0.3`, `new_users("90d") == 0`,
	}
	var progs []*Program
	for i := 0; i < 2; i++ {
		for _, x := range exprs {
			p, err := env.CompileBool(x)
			if err != nil {
				b.Fatal(err)
			}
			progs = append(progs, p)
		}
	}
	a := fixture(b)
	ev := env.NewEvaluator()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Reset(a, day(60), nil)
		for _, p := range progs {
			if _, err := p.Bool(ev); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkApplyMarshal(b *testing.B) {
	a := fixture(b)
	e := track(b, day(60), "u1", "report_created", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := Unmarshal(a.Marshal())
		if err != nil {
			b.Fatal(err)
		}
		got.Apply(e, &testConfig)
	}
}

// TestLateContractEventDoesNotOverwrite: the contract is the newest by event
// time, whatever order the billing events arrive in.
func TestLateContractEventDoesNotOverwrite(t *testing.T) {
	older := track(t, day(10), "u1", "billing.contract_updated", map[string]any{"plan": "team", "seats": 10, "arr": 18000,
		"contract_start": day(10).Format(time.RFC3339), "contract_end": day(375).Format(time.RFC3339)})
	newer := track(t, day(200), "u1", "billing.contract_updated", map[string]any{"plan": "business", "seats": 25, "arr": 20000,
		"contract_start": day(200).Format(time.RFC3339), "contract_end": day(565).Format(time.RFC3339)})
	for _, order := range [][]*ingestionv1.Event{{older, newer}, {newer, older}} {
		a := New("w", "acme")
		for _, e := range order {
			a.Apply(e, nil)
		}
		if a.ARR != 20000 || a.Seats != 25 || a.Traits["plan"] != "business" || a.ContractEnd != day(565).Unix() {
			t.Errorf("applied %s first: ARR %v seats %d plan %q end %d; want the newest contract (20000, 25, business, day 565)",
				order[0].GetEvent(), a.ARR, a.Seats, a.Traits["plan"], a.ContractEnd)
		}
	}
}

func TestARRHistory(t *testing.T) {
	contract := func(d int, arr float64) *ingestionv1.Event {
		return track(t, day(d), "", "billing.contract_updated", map[string]any{"arr": arr})
	}
	tests := []struct {
		name   string
		events []*ingestionv1.Event
		want   []ARRChange
		at     map[int]float64 // day -> ARRAt(that day)
	}{
		{"none", nil, nil, map[int]float64{0: 0}},
		{"changes, repeats dropped", []*ingestionv1.Event{contract(10, 1000), contract(20, 1000), contract(30, 1500), contract(40, 1200)},
			[]ARRChange{{day(10).Unix(), 1000}, {day(30).Unix(), 1500}, {day(40).Unix(), 1200}},
			map[int]float64{5: 0, 10: 1000, 29: 1000, 30: 1500, 50: 1200}},
		{"a late event is dated, the current ARR stays the newest", []*ingestionv1.Event{contract(40, 1200), contract(10, 1000)},
			[]ARRChange{{day(10).Unix(), 1000}, {day(40).Unix(), 1200}},
			map[int]float64{20: 1000, 40: 1200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New("w", "a")
			for _, e := range tt.events {
				a.Apply(e, nil)
			}
			if !slices.Equal(a.ARRHistory, tt.want) {
				t.Errorf("history = %v, want %v", a.ARRHistory, tt.want)
			}
			for d, want := range tt.at {
				if got := a.ARRAt(day(d).Unix()); got != want {
					t.Errorf("ARRAt(day %d) = %v, want %v", d, got, want)
				}
			}
			got, err := Unmarshal(a.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.ARRHistory, a.ARRHistory) {
				t.Errorf("decoded history = %v, want %v", got.ARRHistory, a.ARRHistory)
			}
			if len(tt.events) > 0 && a.ARR != 1200 {
				t.Errorf("ARR = %v, want the newest contract's 1200", a.ARR)
			}
		})
	}
}
