package demo

import (
	"slices"
	"testing"

	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

// TestDemoUsesTheVocabulary generates a small workspace and fails when any
// track event is named outside the event vocabulary (pkg/domain/vocab:
// canonical names or documented aliases), or is a synthetic name only Cairn
// may record; and when the demo leaves out a vocabulary feature, so that
// feature adoption in the demo is what health and the templates count.
func TestDemoUsesTheVocabulary(t *testing.T) {
	ds := Generate(Options{Seed: 5, Accounts: 60, Now: fixedNow})
	seen := map[string]int{}
	for _, ev := range ds.Events {
		if ev.Type != "track" {
			continue
		}
		seen[ev.Event]++
	}
	for name, n := range seen {
		e, ok := vocab.Lookup(name)
		switch {
		case !ok:
			t.Errorf("the demo sends %d %q events, which the event vocabulary does not hold", n, name)
		case e.Role == vocab.RoleSynthetic:
			t.Errorf("the demo sends %q, which only Cairn may record", name)
		}
	}
	for _, f := range vocab.Features() {
		if seen[f] == 0 {
			t.Errorf("the demo never uses the feature %s", f)
		}
	}
	if seen[vocab.IntegrationConnected] == 0 {
		t.Errorf("the demo never sends %s", vocab.IntegrationConnected)
	}
	var mix []string
	for _, f := range featureMix {
		mix = append(mix, f.name)
	}
	if !slices.Equal(mix, vocab.Features()) {
		t.Errorf("feature mix %v, want the vocabulary's features %v", mix, vocab.Features())
	}
}
