package journey

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

func TestTemplatesCompile(t *testing.T) {
	all, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"five-stage": 5, "seven-stage-b2b": 7, "product-led": 6}
	if len(all) != len(want) {
		t.Fatalf("got %d templates, want %d", len(all), len(want))
	}
	for _, def := range all {
		t.Run(def.GetId(), func(t *testing.T) {
			j, err := Compile(def)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if n := len(j.Stages); n != want[def.GetId()] {
				t.Errorf("stages = %d, want %d", n, want[def.GetId()])
			}
			for _, s := range j.Stages {
				if s.Def.GetOwnerTeam() == "" || len(s.Def.GetMetrics()) == 0 {
					t.Errorf("stage %s lacks an owner team or metrics", s.Def.GetId())
				}
			}
		})
	}
}

func TestSevenStageOwners(t *testing.T) {
	def, err := Template("seven-stage-b2b")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range def.GetStages() {
		got = append(got, s.GetName()+"="+s.GetOwnerTeam())
	}
	want := "Awareness=Marketing Consideration=Marketing+Sales Decision=Sales Onboarding=CS+Implementation Adoption=CS Renewal=CS+Sales Expansion=CS+Sales"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	all, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range all {
		t.Run(def.GetId(), func(t *testing.T) {
			y, err := ProtoYAML(def)
			if err != nil {
				t.Fatal(err)
			}
			back, errs := ProtoFromYAML([]byte(y))
			if len(errs) > 0 {
				t.Fatalf("parse: %v", errs)
			}
			if !proto.Equal(def, back) {
				t.Errorf("round trip differs:\n%s", y)
			}
		})
	}
}

func TestInvalidDefinitions(t *testing.T) {
	tests := []struct {
		file string
		want []string // "path: message fragment"
	}{
		{"bad_criteria.yaml", []string{
			`stages[onboarding].exit[activated]: 1:20: window "14x": unit must be d (days) or w (weeks)`,
			`stages[onboarding].dropoff[stalled]: 1:1: undeclared reference to 'nope'`,
			`stages[adoption].entry[Bad Name].name: must match`,
			`stages[adoption].exit[users]: 1:1: expression returns int, want bool`,
			`stages[adoption].exit[users].name: duplicate criterion name`,
		}},
		{"bad_structure.yaml", []string{
			`id: must match`,
			`stages[trial].id: duplicate stage id`,
			`stages[trial].allowed_moves[0]: unknown stage "nowhere"`,
			`stages[2].id: must match`,
			`stages[trial].dropoff[idle].check_after: duration "soon"`,
		}},
		{"unknown_field.yaml", []string{`yaml: parse journey YAML: yaml: unmarshal errors:`}},
		{"empty.yaml", []string{`stages: at least one stage is required`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			def, errs := ProtoFromYAML(data)
			if def != nil {
				errs = append(errs, Validate(def)...)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.GetPath()+": "+e.GetMessage())
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					if strings.HasPrefix(g, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing error %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
		})
	}
}

func TestCompileErrorIsInvalid(t *testing.T) {
	_, err := Compile(&stagesv1.JourneyDefinition{Id: "x"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func track(at time.Time, user, name string, props map[string]any) *ingestionv1.Event {
	var s *structpb.Struct
	if props != nil {
		s, _ = structpb.NewStruct(props)
	}
	return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: user, Event: name, Source: "product", Timestamp: timestamppb.New(at), Properties: s}
}

// toy is a small journey exercising every move rule.
const toy = `
id: toy
features: [a, b, c]
stages:
  - id: lead
    exit: [{name: hot, expr: 'has_event("demo")'}]
    dropoff: [{name: cold, expr: 'days_in_stage >= 5 && !has_event("demo")', check_after: 5d}]
  - id: trial
    entry: [{name: hot, expr: 'has_event("demo")'}]
    exit: [{name: paid, expr: 'has_event("paid")'}]
  - id: active
    entry: [{name: paid, expr: 'has_event("paid")'}]
    exit: [{name: busy, expr: 'count("use", "7d") >= 3'}]
  - id: power
    moves: [active]
    entry: [{name: busy, expr: 'count("use", "7d") >= 3'}]
    exit: [{name: renew_due, expr: 'days_until_contract_end() <= 30'}]
  - id: renewal
    moves: [power, active]
    entry: [{name: due, expr: 'days_until_contract_end() <= 30'}]
    exit: [{name: renewed, expr: 'count("billing.renewed", "30d") > 0'}]
`

func TestEvaluate(t *testing.T) {
	def, errs := ProtoFromYAML([]byte(toy))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	j, err := Compile(def)
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		at     time.Time
		events []*ingestionv1.Event
		moves  string // "from>to:cause ..." for this step
		stage  string
		opened string
		closed string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "placement, drop-off deduplicated, progress closes signal",
			steps: []step{
				{at: day(0), events: []*ingestionv1.Event{track(day(0), "u", "visit", nil)}, moves: ">lead:event", stage: "lead"},
				{at: day(5), moves: "", stage: "lead", opened: "lead.cold"},
				{at: day(6), moves: "", stage: "lead"},
				{at: day(7), events: []*ingestionv1.Event{track(day(7), "u", "demo", nil)}, moves: "lead>trial:event", stage: "trial", closed: "lead.cold"},
			},
		},
		{
			name: "first placement is the furthest stage whose entry holds, then progress",
			steps: []step{
				{at: day(1), events: []*ingestionv1.Event{
					track(day(1), "u", "demo", nil), track(day(1), "u", "paid", nil),
					track(day(1), "u", "use", nil), track(day(1), "u", "use", nil), track(day(1), "u", "use", nil),
				}, moves: ">power:event", stage: "power"},
			},
		},
		{
			name: "regression when entry stops holding, renewal loop",
			steps: []step{
				{at: day(1), events: []*ingestionv1.Event{
					track(day(1), "u", "paid", nil), track(day(1), "u", "use", nil), track(day(1), "u", "use", nil), track(day(1), "u", "use", nil),
				}, moves: ">power:event", stage: "power"},
				{at: day(20), moves: "power>active:regression", stage: "active"},
				{at: day(21), events: []*ingestionv1.Event{
					track(day(21), "u", "use", nil), track(day(21), "u", "use", nil), track(day(21), "u", "use", nil),
					track(day(21), "", "billing.contract_updated", map[string]any{"contract_end": day(40).Format(time.RFC3339)}),
				}, moves: "active>power:event power>renewal:event", stage: "renewal"},
				{at: day(22), events: []*ingestionv1.Event{
					track(day(22), "", "billing.renewed", map[string]any{"contract_end": day(400).Format(time.RFC3339)}),
					track(day(22), "", "billing.contract_updated", map[string]any{"contract_end": day(400).Format(time.RFC3339)}),
				}, moves: "renewal>power:event", stage: "power"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := j.NewEvaluator()
			a := account.New("w", "a")
			var st State
			for i, s := range tt.steps {
				for _, e := range s.events {
					a.Apply(e, &j.Config)
				}
				out := ev.Evaluate(a, st, s.at, CauseEvent)
				var moves, opened, closed []string
				for _, m := range out.Moves {
					moves = append(moves, fmt.Sprintf("%s>%s:%s", m.From, m.To, m.Cause))
				}
				for _, sc := range out.Signals {
					if sc.Open {
						opened = append(opened, sc.Reason())
					} else {
						closed = append(closed, sc.Reason())
					}
				}
				check := func(what, got, want string) {
					if got != want {
						t.Errorf("step %d %s = %q, want %q", i, what, got, want)
					}
				}
				check("moves", strings.Join(moves, " "), s.moves)
				check("stage", out.State.Stage, s.stage)
				check("opened", strings.Join(opened, " "), s.opened)
				check("closed", strings.Join(closed, " "), s.closed)
				if out.NextCheck.IsZero() || !out.NextCheck.After(s.at) {
					t.Errorf("step %d next check %v not after %v", i, out.NextCheck, s.at)
				}
				st = out.State
			}
		})
	}
}

func TestNextCheck(t *testing.T) {
	def, errs := ProtoFromYAML([]byte(toy))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	j, err := Compile(def)
	if err != nil {
		t.Fatal(err)
	}
	ev := j.NewEvaluator()
	a := account.New("w", "a")
	a.Apply(track(day(0), "u", "visit", nil), &j.Config)
	tests := []struct {
		name string
		st   State
		now  time.Time
		want time.Time
	}{
		{"check_after deadline before midnight", State{Stage: "lead", EnteredAt: day(-5).Add(2 * time.Hour)}, day(0), day(0).Add(2 * time.Hour)},
		{"otherwise next midnight", State{Stage: "lead", EnteredAt: day(0)}, day(0), day(1).Truncate(24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := ev.Evaluate(a, tt.st, tt.now, CauseTimer)
			if !out.NextCheck.Equal(tt.want) {
				t.Errorf("next check = %v, want %v", out.NextCheck, tt.want)
			}
		})
	}
}

func TestParseYAMLRefusesHostileFiles(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"two documents", "id: a\nstages: [{id: one}]\n---\nid: b\n",
			"parse journey YAML: line 3: a second YAML document: multi-document files are not supported; apply one definition per file"},
		{"a number out of range", "id: a\nstages: [{id: one, name: 1e400}]\n",
			"parse journey YAML: line 2: stages[0].name: number 1e400 is out of range (more than a 64-bit float holds)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseYAML([]byte(tt.yaml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ParseYAML = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := ParseYAML([]byte("id: a\nstages: [{id: one}]\n---\n")); err != nil {
		t.Fatalf("a trailing document marker: %v", err)
	}
}

func TestPathologicalCriterionCannotBrick(t *testing.T) {
	y := `
id: evil
stages:
  - id: one
    exit: [{name: slow, expr: '[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, [1,2,3,4,5,6,7,8,9,10].all(z, active_users("30d") >= 0)))'}]
  - id: two
`
	def, errs := ProtoFromYAML([]byte(y))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	j, err := Compile(def)
	if err != nil {
		t.Fatal(err)
	}
	ev := j.NewEvaluator()
	a := account.New("w", "a")
	a.Apply(track(day(0), "u", "x", nil), &j.Config)
	out := ev.Evaluate(a, State{}, day(0), CauseEvent)
	if out.State.Stage != "one" {
		t.Fatalf("stage = %q, want one", out.State.Stage)
	}
	exit, _ := ev.Explain(a, out.State, day(0))
	if len(exit) != 1 || exit[0].GetMet() || !strings.Contains(exit[0].GetError(), "cost limit") {
		t.Errorf("exit results = %v, want one unmet criterion with a cost-limit error", exit)
	}
}

func FuzzParseYAML(f *testing.F) {
	all, err := Templates()
	if err != nil {
		f.Fatal(err)
	}
	for _, def := range all {
		y, err := ProtoYAML(def)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(y))
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(toy))
	f.Add([]byte("id: a\nstages: [{id: one}]\n---\nid: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		def, errs := ProtoFromYAML(data)
		if def == nil {
			if len(errs) == 0 {
				t.Fatal("no definition and no error")
			}
			for _, e := range errs {
				if e.GetPath() == "" || e.GetMessage() == "" {
					t.Fatalf("error without a path or message: %v", e)
				}
			}
			return
		}
		if err := yamldoc.Check(data); err != nil {
			t.Fatalf("ProtoFromYAML accepted a file yamldoc refuses: %v", err)
		}
		// Validation must report problems, never panic; a valid definition
		// must evaluate an empty account without panicking.
		j, err := Compile(def)
		if err != nil {
			return
		}
		j.NewEvaluator().Evaluate(account.New("w", "a"), State{}, t0, CauseEvent)
	})
}
