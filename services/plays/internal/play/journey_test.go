package play

import (
	"slices"
	"testing"
)

// TestMatchJourney: a play's journey narrows its stage triggers to that
// journey's stage changes, the default journey's when it names none; it
// does not narrow other kinds.
func TestMatchJourney(t *testing.T) {
	s, err := Load([]byte(`plays:
  - id: any-default
    on: [stage.entered, stage.exited, status.churned]
    actions: [{task: {title: t, owner: csm}}]
  - id: named-default
    on: [stage.entered]
    journey: default
    actions: [{task: {title: t, owner: csm}}]
  - id: self-serve
    on: [stage.entered, status.churned]
    journey: self-serve
    actions: [{task: {title: t, owner: csm}}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	// in is the stage change's journey as the app's rule would say it.
	in := func(j string) func(string) bool {
		return func(id string) bool {
			if id == "" {
				id = "default"
			}
			return id == j
		}
	}
	for _, tc := range []struct {
		name string
		in   Input
		want []string
	}{
		{"default journey's stage change", Input{Kind: StageEntered, InJourney: in("default")}, []string{"any-default", "named-default"}},
		{"no journey said: the default's", Input{Kind: StageEntered}, []string{"any-default", "named-default"}},
		{"second journey's stage change", Input{Kind: StageEntered, InJourney: in("self-serve")}, []string{"self-serve"}},
		{"second journey's exit", Input{Kind: StageExited, InJourney: in("self-serve")}, nil},
		{"a third journey's", Input{Kind: StageEntered, InJourney: in("other")}, nil},
		{"status triggers are not narrowed", Input{Kind: StatusChurned, InJourney: in("other")}, []string{"any-default", "self-serve"}},
	} {
		ms, err := s.Match(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Play.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: matched %q, want %q", tc.name, got, tc.want)
		}
	}
}
