package journey_test

import (
	"slices"
	"strings"
	"testing"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
)

// TestTemplatesUseTheVocabulary fails when a built-in template reads an
// event name the vocabulary (pkg/domain/vocab) does not hold, or an alias
// instead of the canonical name ingestion logs: every criterion's literal
// names, the features list (exactly the vocabulary's features) and the
// integration events (the connect event). Page and screen names
// ("page:pricing") are not track events and are left out.
func TestTemplatesUseTheVocabulary(t *testing.T) {
	templates, err := journey.Templates()
	if err != nil {
		t.Fatal(err)
	}
	if len(templates) == 0 {
		t.Fatal("no built-in templates")
	}
	canonical := func(t *testing.T, where, name string) {
		t.Helper()
		switch e, ok := vocab.Lookup(name); {
		case !ok:
			t.Errorf("%s reads %q, which the event vocabulary does not hold", where, name)
		case e.Name != name:
			t.Errorf("%s reads the alias %q: ingestion logs it as %q", where, name, e.Name)
		}
	}
	for _, def := range templates {
		t.Run(def.GetId(), func(t *testing.T) {
			cfg := account.Config{Features: def.GetFeatures(), IntegrationEvents: def.GetIntegrationEvents(), ActivityEvents: def.GetActivityEvents()}
			env, err := journey.NewEnv(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range def.GetStages() {
				for kind, crits := range map[string][]*stagesv1.Criterion{"entry": s.GetEntry(), "exit": s.GetExit(), "dropoff": s.GetDropoff()} {
					for _, c := range crits {
						names, err := env.EventNames(c.GetExpr())
						if err != nil {
							t.Fatalf("stages[%s].%s[%s]: %v", s.GetId(), kind, c.GetName(), err)
						}
						for _, n := range names {
							if strings.HasPrefix(n, "page:") || strings.HasPrefix(n, "screen:") {
								continue
							}
							canonical(t, "stages["+s.GetId()+"]."+kind+"["+c.GetName()+"]", n)
						}
					}
				}
			}
			if got, want := slices.Sorted(slices.Values(def.GetFeatures())), slices.Sorted(slices.Values(vocab.Features())); !slices.Equal(got, want) {
				t.Errorf("features = %v, want the vocabulary's %v", got, want)
			}
			for _, n := range def.GetFeatures() {
				canonical(t, "features", n)
			}
			if got := def.GetIntegrationEvents(); !slices.Equal(got, []string{vocab.IntegrationConnected}) {
				t.Errorf("integration_events = %v, want [%s]", got, vocab.IntegrationConnected)
			}
			for _, n := range def.GetActivityEvents() {
				canonical(t, "activity_events", n)
			}
		})
	}
}
