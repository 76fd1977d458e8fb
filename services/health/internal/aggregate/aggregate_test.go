package aggregate_test

import (
	"bytes"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/aggregate"
	"github.com/cairn-dev/cairn/services/health/internal/model"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func track(day int, user, name string, kv ...any) *ingestionv1.Event {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // fixtures only
	}
	return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: user, Event: name, Properties: s,
		Timestamp: timestamppb.New(t0.AddDate(0, 0, day))}
}

func fixture() *aggregate.Aggregate {
	a := aggregate.New("w", "acme")
	evs := []*ingestionv1.Event{
		{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, Timestamp: timestamppb.New(t0),
			Traits: mustStruct(map[string]any{"seats": 4, "arr": 12000, "plan": "pro", "contract_end": "2026-12-31"})},
	}
	// days 0..9: 2 events/day by u1; days 30..39: 1/day by u1 and u2 on f2.
	for d := 0; d < 10; d++ {
		evs = append(evs, track(d, "u1", "f1"), track(d, "u1", "f1"))
	}
	for d := 30; d < 40; d++ {
		evs = append(evs, track(d, "u2", "f2"))
	}
	evs = append(evs,
		track(35, "u1", "support.ticket_opened", "ticket_id", "T1", "priority", "P1"),
		track(36, "u1", "support.ticket_opened", "ticket_id", "T2", "priority", "p3"),
		track(37, "u1", "survey.nps", "score", "8"),
		track(38, "u1", "integration.connected", "integration", "slack"))
	for _, e := range evs {
		a.Apply(e)
	}
	return a
}

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // fixtures only
	}
	return s
}

func TestQueries(t *testing.T) {
	a := fixture()
	now := t0.AddDate(0, 0, 40)
	month := 30 * 24 * time.Hour
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"seats", float64(a.Seats), 4},
		{"arr", a.ARR, 12000},
		{"active users 30d", float64(a.ActiveUsers(now, month)), 1}, // u1 last product use day 9
		{"new users 30d", float64(a.NewUsers(now, month)), 1},
		{"features 30d", float64(a.FeaturesUsed(now, month)), 1},
		{"product events 30d", float64(a.Count(now, "", month)), 10},
		{"named count", float64(a.Count(now, "f1", 60*24*time.Hour)), 20},
		// last 30 days (days 11..40): 10; 30 before (days -19..10): 20
		{"trend", a.Trend(now, "", month), -0.5},
		{"open tickets", float64(a.OpenTickets("")), 2},
		{"open p1", float64(a.OpenTickets("p1")), 1},
		{"oldest p1 age", a.OpenTicketMaxAgeDays(now, "p1"), 5},
		{"nps from string", a.NPS, 8},
		{"days since nps", a.DaysSince(now, "survey.nps"), 3},
		{"never seen", a.DaysSince(now, "billing.churned"), -1},
		{"seat ratio", a.SeatsActiveRatio(), 0.5},
		{"age", a.DaysSinceCreated(now), 40},
		{"days to contract end", math.Round(a.DaysUntilContractEnd(now)), 324},
		{"integrations", float64(len(a.Integrations)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if math.Abs(tt.got-tt.want) > 1e-9 {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// nested60 is a CEL list literal of 60 ints.
var nested60 = "[" + strings.Repeat("1, ", 59) + "1]"

func TestCELFunctions(t *testing.T) {
	c, err := aggregate.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	act, err := aggregate.Activate(aggregate.Input{Agg: fixture(), Now: t0.AddDate(0, 0, 40), Stage: "adoption", EnteredAt: t0.AddDate(0, 0, 30)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr    string
		want    float64
		compile string // error substring at compile time
		eval    string // error substring at evaluation
	}{
		{expr: `double(active_users("30d")) / double(seats())`, want: 0.25},
		{expr: `count("f2", "30d")`, want: 10},
		{expr: `trend("", "30d")`, want: -0.5},
		{expr: `open_tickets("p1") + open_tickets("")`, want: 3},
		{expr: `days_in_stage`, want: 10},
		{expr: `stage == "adoption" ? 1.0 : 0.0`, want: 1},
		{expr: `plan() == "pro" && trait("plan") == "pro" ? arr() : 0.0`, want: 12000},
		{expr: `nps()`, want: 8},
		{expr: `features_used("1d")`, want: 0},
		{expr: `active_users("thirty")`, eval: "window"},
		{expr: `active_users(30)`, compile: "found no matching overload"},
		{expr: `stage`, compile: "want"},
		{expr: `unknown_fn()`, compile: "undeclared"},
		// Statically bounded: evaluated without runtime cost tracking.
		{expr: `[1, 2, 3].map(x, x * seats()).size() == 3 ? nps() : 0.0`, want: 8},
		// Not provably bounded (60^3 steps): tracked, and stopped at the limit.
		{expr: `double(` + nested60 + `.map(a, ` + nested60 + `.map(b, ` + nested60 + `.map(c, a + b + c))).size())`, eval: "cost limit exceeded"},
		{expr: `trait("plan") + trait("plan") == "propro" ? 1.0 : 0.0`, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			m, err := c.Number(tt.expr)
			if tt.compile != "" {
				if err == nil || !strings.Contains(err.Error(), tt.compile) {
					t.Fatalf("compile error %v, want %q", err, tt.compile)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := m(act)
			if tt.eval != "" {
				if err == nil || !strings.Contains(err.Error(), tt.eval) {
					t.Fatalf("eval error %v, want %q", err, tt.eval)
				}
				return
			}
			if err != nil || math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestForgetUser(t *testing.T) {
	a := fixture()
	a.ForgetUser("u1")
	if _, ok := a.Users["u1"]; ok || len(a.Users) != 1 {
		t.Fatalf("users after forget: %v", a.Users)
	}
}

// FuzzApply feeds arbitrary event JSON (outside input, as ingestion accepts
// it) through Apply and the default model: nothing may panic and the score
// must stay within 0..100.
func FuzzApply(f *testing.F) {
	f.Add(`{"type":"EVENT_TYPE_TRACK","event":"support.ticket_opened","userId":"u","properties":{"ticket_id":"T","priority":"P1"}}`)
	f.Add(`{"type":"EVENT_TYPE_GROUP","traits":{"seats":"-3","contract_end":"not a date","champion_user_id":7}}`)
	f.Add(`{"type":"EVENT_TYPE_IDENTIFY","userId":"u","traits":{"email":"@","department":""}}`)
	f.Add(`{"type":"EVENT_TYPE_TRACK","event":"survey.nps","properties":{"score":1e308}}`)
	f.Add(`{"type":"EVENT_TYPE_TRACK","event":"x","timestamp":"0001-01-01T00:00:00Z","properties":{"tier":"enterprise","feature":""}}`)
	comp, err := aggregate.NewCompiler()
	if err != nil {
		f.Fatal(err)
	}
	dm, err := model.Default()
	if err != nil {
		f.Fatal(err)
	}
	cm, err := model.Compile(dm, comp)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, js string) {
		ev := &ingestionv1.Event{}
		if err := protojson.Unmarshal([]byte(js), ev); err != nil {
			return
		}
		a := aggregate.New("w", "a")
		a.Apply(ev)
		a.Apply(ev)
		act, err := aggregate.Activate(aggregate.Input{Agg: a, Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		if r := cm.Score(act); r.Score < 0 || r.Score > 100 || math.IsNaN(r.Score) {
			t.Fatalf("score %v", r.Score)
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"30d", "12h", "0d", "-1d", "99999999999d", "d", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := aggregate.ParseWindow(s)
		if err == nil && d <= 0 {
			t.Fatalf("ParseWindow(%q) = %v without error", s, d)
		}
	})
}

func TestCodecRoundTrip(t *testing.T) {
	a := fixture()
	a.Apply(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u9",
		Traits: mustStruct(map[string]any{"email": "x@y.io", "department": "Ops", "role": "champion"}), Timestamp: timestamppb.New(t0)})
	a.Apply(track(41, "u1", "sso", "tier", "enterprise"))
	a.Apply(track(42, "u1", "billing.churned"))
	a.CreatedAt = time.Date(1500, 1, 1, 0, 0, 0, 7, time.UTC) // outside the UnixNano range
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got := &aggregate.Aggregate{}
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, a)
	}
	again, _ := got.MarshalBinary()
	if !bytes.Equal(again, b) {
		t.Fatal("encoding is not deterministic")
	}
	for i := 0; i < len(b); i++ {
		if err := (&aggregate.Aggregate{}).UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes decoded without error", i)
		}
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	b, err := fixture().MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		a := &aggregate.Aggregate{}
		if err := a.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := (&aggregate.Aggregate{}).UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded aggregate does not decode: %v", err)
		}
	})
}

// BenchmarkScoreDefaultModel scores one account with the built-in model:
// the CEL part of every evaluation (go test -bench ScoreDefaultModel).
func BenchmarkScoreDefaultModel(b *testing.B) {
	comp, err := aggregate.NewCompiler()
	if err != nil {
		b.Fatal(err)
	}
	dm, err := model.Default()
	if err != nil {
		b.Fatal(err)
	}
	cm, err := model.Compile(dm, comp)
	if err != nil {
		b.Fatal(err)
	}
	act := aggregate.NewActivation()
	in := aggregate.Input{Agg: fixture(), Now: t0.AddDate(0, 0, 40)}
	b.ReportAllocs()
	for b.Loop() {
		act.Reset(in)
		if r := cm.Score(act); r.Score <= 0 {
			b.Fatalf("score %v", r.Score)
		}
	}
}

// TestScratchDecode decodes different aggregates one after another into one
// Scratch: each must equal a fresh decode, whatever the previous one held.
func TestScratchDecode(t *testing.T) {
	var encoded [][]byte
	add := func(a *aggregate.Aggregate) {
		b, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, b)
	}
	add(fixture())
	add(aggregate.New("w", "empty"))
	big := fixture()
	for d := 40; d < 70; d++ {
		big.Apply(track(d, "u"+strconv.Itoa(d%7), "f"+strconv.Itoa(d%5), "tier", "enterprise"))
		ev := track(d, "u1", "crm.call")
		ev.Source = "crm"
		big.Apply(ev)
	}
	big.Apply(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u9",
		Traits: mustStruct(map[string]any{"email": "x@y.io", "department": "Ops"}), Timestamp: timestamppb.New(t0.AddDate(0, 0, 69))})
	big.Apply(track(69, "u1", "billing.renewed", "seats", 9))
	add(big)
	add(fixture())
	add(big)
	add(aggregate.New("w", "empty again"))

	var s aggregate.Scratch
	for i, b := range encoded {
		want := &aggregate.Aggregate{}
		if err := want.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("aggregate %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}
