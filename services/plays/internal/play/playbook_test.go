package play

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// step is a step as the tables below write it: "title (owner, due)".
func stepString(s Step) string {
	return fmt.Sprintf("%s (%s, %s)", s.Title, s.Owner, FormatDuration(s.Due))
}

// TestRenewalPlaybook checks the renewal playbook's tasks at 120/90/60/30
// days by band.
func TestRenewalPlaybook(t *testing.T) {
	pb, ok := Builtin(PlaybookRenewal)
	if !ok {
		t.Fatal("no renewal playbook")
	}
	if !slices.Equal(pb.Windows(), []int{120, 90, 60, 30}) {
		t.Errorf("windows = %v", pb.Windows())
	}
	tests := []struct {
		window int
		band   string
		want   []string
	}{
		{120, BandAtRisk, []string{"Review account plan and renewal risk (csm, 2d)", "Executive sponsor call (csm, 2d)"}},
		{120, BandNeutral, []string{"Review account plan and renewal risk (csm, 5d)"}},
		{120, BandHealthy, nil},
		{90, BandAtRisk, []string{"Renewal kickoff with champion (csm, 2d)", "Executive sponsor call (csm, 2d)"}},
		{90, BandNeutral, []string{"Renewal kickoff with champion (csm, 5d)"}},
		{90, BandHealthy, nil},
		{60, BandAtRisk, []string{"Send renewal proposal (ae, 2d)"}},
		{60, BandNeutral, []string{"Send renewal proposal (ae, 5d)"}},
		{60, BandHealthy, []string{"Confirm auto-renewal (csm, 5d)"}},
		{30, BandAtRisk, []string{"Confirm signature path / escalate (ae, 2d)"}},
		{30, BandNeutral, []string{"Confirm signature path / escalate (ae, 5d)"}},
		{30, BandHealthy, nil},
		// Not yet scored (or health's "unspecified"): the neutral path.
		{90, "", []string{"Renewal kickoff with champion (csm, 5d)"}},
		{60, "unspecified", []string{"Send renewal proposal (ae, 5d)"}},
		// No renewal window: no renewal step.
		{0, BandAtRisk, nil},
		{45, BandNeutral, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%s", tt.window, tt.band), func(t *testing.T) {
			var got []string
			for _, s := range pb.StepsFor(Anchor{WindowDays: tt.window, Band: tt.band}) {
				got = append(got, stepString(s))
				if s.Offset != 0 || s.SkipIf != "" {
					t.Errorf("renewal step %q has offset %v, skip_if %q", s.Title, s.Offset, s.SkipIf)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("steps:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestOnboardingPlaybook(t *testing.T) {
	pb, ok := Builtin(PlaybookOnboarding)
	if !ok {
		t.Fatal("no onboarding playbook")
	}
	for _, band := range []string{"", BandHealthy, BandNeutral, BandAtRisk} {
		steps := pb.StepsFor(Anchor{Band: band})
		var got []string
		for _, s := range steps {
			got = append(got, fmt.Sprintf("+%s %s", FormatDuration(s.Offset), stepString(s)))
			if s.SkipIf != `account.stage != "onboarding"` {
				t.Errorf("step %q skip_if = %q", s.Title, s.SkipIf)
			}
		}
		want := []string{
			"+1w No first login in 7 days: call the champion (csm, 2d)",
			"+6w3d No first value in 45 days: run an adoption workshop (csm, 5d)",
		}
		if !slices.Equal(got, want) {
			t.Errorf("band %q: steps %q, want %q", band, got, want)
		}
	}
	if pb.Steps[0].Offset != 7*24*time.Hour || pb.Steps[1].Offset != 45*24*time.Hour {
		t.Errorf("offsets %v, %v", pb.Steps[0].Offset, pb.Steps[1].Offset)
	}
}

func TestBuiltinDefsAreCopies(t *testing.T) {
	a := BuiltinDefs()
	a[0].Steps[0].Title = "changed"
	if BuiltinDefs()[0].Steps[0].Title == "changed" {
		t.Error("BuiltinDefs shares its table")
	}
	for _, def := range BuiltinDefs() {
		if !isBuiltin(def.ID) {
			t.Errorf("%s is in BuiltinDefs but not isBuiltin", def.ID)
		}
	}
}

func TestStepsForFileWindows(t *testing.T) {
	f, err := Parse([]byte(`plays: []
playbooks:
  - id: renewal-lite
    steps:
      - {window: 90, title: "Kickoff", owner: csm}
      - {window: 30, offset: -7d, title: "Chase signature", owner: ae, bands: [at_risk]}
      - {title: "Log the run", owner: "pool:ops"}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := s.Playbook("renewal-lite")
	titles := func(a Anchor) []string {
		var out []string
		for _, st := range pb.StepsFor(a) {
			out = append(out, st.Title)
		}
		return out
	}
	if got := titles(Anchor{WindowDays: 90}); !slices.Equal(got, []string{"Kickoff", "Log the run"}) {
		t.Errorf("90: %v", got)
	}
	if got := titles(Anchor{WindowDays: 30, Band: BandAtRisk}); !slices.Equal(got, []string{"Chase signature", "Log the run"}) {
		t.Errorf("30 at risk: %v", got)
	}
	if got := titles(Anchor{WindowDays: 30, Band: BandHealthy}); !slices.Equal(got, []string{"Log the run"}) {
		t.Errorf("30 healthy: %v", got)
	}
	if pb.Steps[1].Offset != -7*24*time.Hour {
		t.Errorf("negative offset = %v", pb.Steps[1].Offset)
	}
}
