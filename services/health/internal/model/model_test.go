package model_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"google.golang.org/protobuf/proto"
)

// fakeCompiler treats each expression as a key into a map[string]float64
// input, so scoring can be tested without CEL. "broken" fails to compile and
// "fails" fails to evaluate.
type fakeCompiler struct{}

func (fakeCompiler) Number(expr string) (model.Measure, error) {
	if expr == "broken" {
		return nil, errors.New("syntax error")
	}
	return func(in any) (float64, error) {
		if expr == "fails" {
			return 0, errors.New("division by zero")
		}
		v, ok := in.(map[string]float64)[expr]
		if !ok {
			return 0, fmt.Errorf("no value for %s", expr)
		}
		return v, nil
	}, nil
}

func (fakeCompiler) Bool(expr string) (model.Condition, error) {
	if expr == "broken" {
		return nil, errors.New("syntax error")
	}
	return func(in any) (bool, error) { return in.(map[string]float64)[expr] != 0, nil }, nil
}

func thresholds(pairs ...float64) []*healthv1.Threshold {
	var out []*healthv1.Threshold
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, &healthv1.Threshold{Min: pairs[i], Points: pairs[i+1]})
	}
	return out
}

func testModel() *healthv1.Model {
	return &healthv1.Model{
		Id: "t",
		Components: []*healthv1.Component{
			{Name: "breadth", Measure: "breadth", Weight: 50, Thresholds: thresholds(0, 0, 0.2, 40, 0.5, 100)},
			{Name: "trend", Measure: "trend", Weight: 30, Linear: &healthv1.LinearRange{From: -0.5, To: 0.5}},
			{Name: "tickets", Measure: "tickets", Weight: 20, Linear: &healthv1.LinearRange{From: 10, To: 0}},
		},
		Profiles: []*healthv1.Profile{{
			Name: "onboarding", When: "young",
			Components: []*healthv1.Component{
				{Name: "breadth", Measure: "breadth", Weight: 100, Thresholds: thresholds(0, 20, 0.1, 100)},
			},
		}},
	}
}

func TestScore(t *testing.T) {
	c, err := model.Compile(testModel(), fakeCompiler{})
	if err != nil {
		t.Fatal(err)
	}
	type comp struct{ raw, points, contribution float64 }
	tests := []struct {
		name    string
		in      map[string]float64
		score   float64
		band    healthv1.Band
		profile string
		comps   []comp
	}{
		{
			// 100*50/100 + 100*30/100 + 100*20/100 = 100
			name: "all top", in: map[string]float64{"breadth": 0.9, "trend": 0.7, "tickets": 0},
			score: 100, band: healthv1.Band_BAND_HEALTHY,
			comps: []comp{{0.9, 100, 50}, {0.7, 100, 30}, {0, 100, 20}},
		},
		{
			// breadth 0.3 -> 40 pts -> 20; trend 0 -> 50 pts -> 15; tickets 5 -> 50 pts -> 10; total 45
			name: "middle", in: map[string]float64{"breadth": 0.3, "trend": 0, "tickets": 5},
			score: 45, band: healthv1.Band_BAND_AT_RISK,
			comps: []comp{{0.3, 40, 20}, {0, 50, 15}, {5, 50, 10}},
		},
		{
			// breadth exactly 0.5 -> 100 -> 50; trend 0.1 -> 60 -> 18; tickets 2 -> 80 -> 16; total 84
			name: "threshold boundary is inclusive", in: map[string]float64{"breadth": 0.5, "trend": 0.1, "tickets": 2},
			score: 84, band: healthv1.Band_BAND_HEALTHY,
			comps: []comp{{0.5, 100, 50}, {0.1, 60, 18}, {2, 80, 16}},
		},
		{
			// breadth 0.2 -> 40 -> 20; trend 0.5 -> 100 -> 30; tickets 1 -> 90 -> 18; total 68
			name: "neutral", in: map[string]float64{"breadth": 0.2, "trend": 0.5, "tickets": 1},
			score: 68, band: healthv1.Band_BAND_NEUTRAL,
			comps: []comp{{0.2, 40, 20}, {0.5, 100, 30}, {1, 90, 18}},
		},
		{
			// below every threshold and beyond both linear ends: clamped to 0
			name: "clamped low", in: map[string]float64{"breadth": -1, "trend": -3, "tickets": 40},
			score: 0, band: healthv1.Band_BAND_AT_RISK,
			comps: []comp{{-1, 0, 0}, {-3, 0, 0}, {40, 0, 0}},
		},
		{
			// onboarding profile: breadth 0.05 -> 20 pts * 100% = 20
			name: "profile swaps components", in: map[string]float64{"young": 1, "breadth": 0.05},
			score: 20, band: healthv1.Band_BAND_AT_RISK, profile: "onboarding",
			comps: []comp{{0.05, 20, 20}},
		},
		{
			// 1/3 of the linear range: 33.333 pts * 30% = 10 (rounded to 0.01)
			name: "rounding", in: map[string]float64{"breadth": 0, "trend": -0.5 + 1.0/3, "tickets": 10},
			score: 10, band: healthv1.Band_BAND_AT_RISK,
			comps: []comp{{0, 0, 0}, {-0.5 + 1.0/3, 100.0 / 3, 10}, {10, 0, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Score(tt.in)
			if !near(r.Score, tt.score) || r.Band != tt.band || r.Profile != tt.profile {
				t.Fatalf("score=%v band=%v profile=%q, want %v %v %q", r.Score, r.Band, r.Profile, tt.score, tt.band, tt.profile)
			}
			if len(r.Components) != len(tt.comps) {
				t.Fatalf("%d components, want %d", len(r.Components), len(tt.comps))
			}
			for i, want := range tt.comps {
				got := r.Components[i]
				if !near(got.GetRawValue(), want.raw) || !near(got.GetPoints(), want.points) || !near(got.GetContribution(), want.contribution) {
					t.Errorf("component %s: raw=%v points=%v contribution=%v, want %+v", got.GetName(), got.GetRawValue(), got.GetPoints(), got.GetContribution(), want)
				}
				if got.GetExplanation() == "" {
					t.Errorf("component %s has no explanation", got.GetName())
				}
			}
		})
	}
}

func TestScoreMeasureError(t *testing.T) {
	m := testModel()
	m.Components[1].Measure = "fails"
	c, err := model.Compile(m, fakeCompiler{})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Score(map[string]float64{"breadth": 0.9, "tickets": 0})
	if r.Score != 70 || r.Components[1].GetError() != "division by zero" || r.Components[1].GetPoints() != 0 {
		t.Fatalf("got score %v, component %+v", r.Score, r.Components[1])
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *healthv1.Model)
		want   []string // "path: message prefix"
	}{
		{name: "valid", mutate: func(*healthv1.Model) {}},
		{name: "weights", mutate: func(m *healthv1.Model) { m.Components[0].Weight = 45 },
			want: []string{"components: weights total 95, want 100"}},
		{name: "measure compile error", mutate: func(m *healthv1.Model) { m.Components[1].Measure = "broken" },
			want: []string{"components[trend].measure: syntax error"}},
		{name: "missing measure", mutate: func(m *healthv1.Model) { m.Components[1].Measure = "" },
			want: []string{"components[trend].measure: required"}},
		{name: "bands unordered", mutate: func(m *healthv1.Model) { m.Bands = &healthv1.BandThresholds{Healthy: 50, Neutral: 70} },
			want: []string{"bands: want 0 < neutral (70) < healthy (50) <= 100"}},
		{name: "bands NaN", mutate: func(m *healthv1.Model) { m.Bands = &healthv1.BandThresholds{Healthy: math.NaN(), Neutral: 60} },
			want: []string{"bands: want 0 < neutral (60) < healthy (NaN) <= 100"}},
		{name: "thresholds unordered", mutate: func(m *healthv1.Model) { m.Components[0].Thresholds = thresholds(0, 0, 0.5, 100, 0.2, 40) },
			want: []string{"components[breadth].thresholds[2].min: must be above the previous min (0.5)"}},
		{name: "points out of range", mutate: func(m *healthv1.Model) { m.Components[0].Thresholds = thresholds(0, 120) },
			want: []string{"components[breadth].thresholds[0].points: must be in [0, 100], got 120"}},
		{name: "both rules", mutate: func(m *healthv1.Model) { m.Components[0].Linear = &healthv1.LinearRange{From: 0, To: 1} },
			want: []string{"components[breadth]: set either thresholds or linear, not both"}},
		{name: "no rule", mutate: func(m *healthv1.Model) { m.Components[1].Linear = nil },
			want: []string{"components[trend]: set thresholds or linear"}},
		{name: "degenerate linear", mutate: func(m *healthv1.Model) { m.Components[1].Linear = &healthv1.LinearRange{From: 1, To: 1} },
			want: []string{"components[trend].linear: from (1) and to (1) must be finite and differ"}},
		{name: "duplicate and bad name", mutate: func(m *healthv1.Model) { m.Components[1].Name = "breadth"; m.Components[2].Name = "Bad Name" },
			want: []string{"components[breadth].name: duplicate component name", "components[2].name: must match"}},
		{name: "profile", mutate: func(m *healthv1.Model) {
			m.Profiles[0].When = "broken"
			m.Profiles[0].Components[0].Weight = 90
		}, want: []string{"profiles[onboarding].when: syntax error", "profiles[onboarding].components: weights total 90, want 100"}},
		{name: "no components", mutate: func(m *healthv1.Model) { m.Components = nil },
			want: []string{"components: at least one component is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testModel()
			tt.mutate(m)
			got := model.Validate(m, fakeCompiler{})
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %v", len(got), got, tt.want)
			}
			for i, w := range tt.want {
				if s := got[i].GetPath() + ": " + got[i].GetMessage(); !strings.HasPrefix(s, w) {
					t.Errorf("problem %d = %q, want prefix %q", i, s, w)
				}
			}
			_, err := model.Compile(m, fakeCompiler{})
			if (err != nil) != (len(tt.want) > 0) || (err != nil && !errors.Is(err, model.ErrInvalid)) {
				t.Errorf("Compile error = %v", err)
			}
		})
	}
}

func TestDefaultModelCompiles(t *testing.T) {
	m, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	comp, err := measure.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	if probs := model.Validate(m, comp); len(probs) > 0 {
		t.Fatalf("default model invalid: %v", probs)
	}
	want := []string{"usage_breadth", "usage_trend", "feature_adoption", "integrations", "seat_utilization",
		"support_burden", "sentiment", "engagement", "time_to_value"}
	if len(m.GetComponents()) != len(want) {
		t.Fatalf("%d components", len(m.GetComponents()))
	}
	for i, w := range want {
		if m.GetComponents()[i].GetName() != w {
			t.Errorf("component %d = %s, want %s", i, m.GetComponents()[i].GetName(), w)
		}
	}
	if len(m.GetProfiles()) != 1 || m.GetProfiles()[0].GetName() != "onboarding" {
		t.Errorf("want the onboarding profile")
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.ParseYAML(src)
	if err != nil {
		t.Fatal(err)
	}
	if probs := model.Validate(m, fakeCompiler{}); len(probs) > 0 {
		t.Fatalf("testdata model invalid: %v", probs)
	}
	out, err := model.DumpYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "model.golden.yaml")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("dump differs from %s:\n%s", golden, out)
	}
	back, err := model.ParseYAML([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, back) {
		t.Errorf("round trip changed the model")
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown field", "id: x\ncomponnets: []\n", "yaml: "},
		{"not yaml", "id: [\n", "yaml: "},
		{"wrong type", "components: 3\n", "yaml: "},
		{".nan weight", "id: x\ncomponents:\n  - name: usage\n    weight: .nan\n", "components[0].weight: line 4: .nan is not a finite number"},
		{".inf threshold", "components:\n  - name: usage\n    thresholds: [{min: -.inf, points: 0}]\n", "components[0].thresholds[0].min: line 3: -.inf is not a finite number"},
		{"band out of range", "bands:\n  healthy: 1e400\n", "bands.healthy: line 2: number 1e400 is out of range"},
		{"two documents", "id: a\n---\nid: b\n", "yaml: line 2: a second YAML document: multi-document files are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := model.ParseYAML([]byte(tt.src))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, model.ErrInvalid) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func FuzzParseYAML(f *testing.F) {
	src, err := os.ReadFile(filepath.Join("testdata", "model.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(src)
	f.Add([]byte("id: x"))
	f.Add([]byte("components: [{name: a, weight: 1e400}]"))
	f.Add([]byte("components: [{name: a, weight: .nan, linear: {from: 0, to: .inf}}]\n---\nid: b\n"))
	f.Add([]byte("bands: {healthy: NaN, neutral: \"Infinity\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := model.ParseYAML(b)
		if err != nil {
			// A refusal names where (a field path or "yaml") and why.
			var ve *model.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || ve.Problems[0].GetPath() == "" || ve.Problems[0].GetMessage() == "" {
				t.Fatalf("ParseYAML = %v, want problems with a path and a message", err)
			}
			return
		}
		if yerr := yamldoc.Check(b); yerr != nil {
			t.Fatalf("ParseYAML accepted a file yamldoc refuses: %v", yerr)
		}
		c, err := model.Compile(m, fakeCompiler{})
		if err != nil {
			return
		}
		r := c.Score(map[string]float64{})
		if r.Score < 0 || r.Score > 100 {
			t.Fatalf("score %v out of range", r.Score)
		}
		if h, n := model.Bands(m); math.IsNaN(h) || math.IsNaN(n) || math.IsInf(h, 0) || math.IsInf(n, 0) {
			t.Fatalf("a model with bands %v/%v compiled", h, n)
		}
	})
}

// TestExplanations pins the explanation texts, which are built without fmt
// for speed: they must read exactly as they always did.
func TestExplanations(t *testing.T) {
	c, err := model.Compile(testModel(), fakeCompiler{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   map[string]float64
		want []string
	}{
		{
			name: "thresholds and linear",
			in:   map[string]float64{"breadth": 0.3, "trend": 0, "tickets": 5},
			want: []string{"0.3 >= 0.2 gives 40 points", "0 on a linear range -0.5..0.5 gives 50 points", "5 on a linear range 10..0 gives 50 points"},
		},
		{
			name: "below every threshold, clamped, rounded to 4 decimals",
			in:   map[string]float64{"breadth": -1, "trend": -0.5 + 1.0/3, "tickets": 40},
			want: []string{"-1 is below every threshold: 0 points", "-0.1667 on a linear range -0.5..0.5 gives 33.3333 points", "40 on a linear range 10..0 gives 0 points"},
		},
		{
			name: "large and tiny values",
			in:   map[string]float64{"breadth": 1234567.891234, "trend": 0.00001, "tickets": -0.00004},
			want: []string{"1234567.8912 >= 0.5 gives 100 points", "0 on a linear range -0.5..0.5 gives 50.001 points", "-0 on a linear range 10..0 gives 100 points"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Score(tt.in)
			for i, want := range tt.want {
				if got := r.Components[i].GetExplanation(); got != want {
					t.Errorf("component %s: %q, want %q", r.Components[i].GetName(), got, want)
				}
			}
		})
	}
}
