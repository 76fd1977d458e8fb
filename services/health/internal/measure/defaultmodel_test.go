package measure_test

import (
	"slices"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
	"github.com/cairn-dev/cairn/services/health/internal/model"
)

// TestDefaultModelReadsTheVocabulary fails when the built-in default model
// reads an event by a name the event vocabulary does not know, or by an
// alias instead of the canonical name ingestion logs it under (the model
// once read meeting.qbr, which ingestion refuses).
func TestDefaultModelReadsTheVocabulary(t *testing.T) {
	m, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	c, err := measure.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	for _, comp := range m.GetComponents() {
		exprs["components."+comp.GetName()] = comp.GetMeasure()
	}
	for _, p := range m.GetProfiles() {
		exprs["profiles."+p.GetName()+".when"] = p.GetWhen()
		for _, comp := range p.GetComponents() {
			exprs["profiles."+p.GetName()+"."+comp.GetName()] = comp.GetMeasure()
		}
	}
	read := 0
	for path, x := range exprs {
		names, err := c.Env().EventNames(x)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, n := range names {
			read++
			switch {
			case !vocab.Known(n):
				t.Errorf("%s reads %q, which the event vocabulary does not know", path, n)
			case vocab.Canonical(n) != n:
				t.Errorf("%s reads the alias %q; read the canonical %q", path, n, vocab.Canonical(n))
			}
		}
	}
	if read == 0 {
		t.Fatal("the default model reads no event by name: EventNames found nothing to check")
	}
	if len(m.GetFeatures()) != 0 {
		t.Errorf("the default model declares features %v; it takes the vocabulary's", m.GetFeatures())
	}
}

// TestFeaturesAreDeclared checks what counts as a feature: with a model
// that declares none, the vocabulary's features only (a content view is not
// a feature); a model that declares its own counts those.
func TestFeaturesAreDeclared(t *testing.T) {
	if !slices.Equal(measure.Config.Features, vocab.Features()) || len(measure.Config.Features) == 0 {
		t.Fatalf("measure.Config.Features = %v, want the vocabulary's %v", measure.Config.Features, vocab.Features())
	}
	if len(measure.Config.IntegrationEvents) != 0 {
		t.Errorf("IntegrationEvents = %v: integration.connected is read natively", measure.Config.IntegrationEvents)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	agg := account.New("w", "a")
	for _, ev := range []string{"content_viewed", "report_created", "dashboard_shared", "my_own_thing"} {
		agg.Apply(track("a", "u1", ev, now.Add(-time.Hour)), &measure.Config)
	}
	c, err := measure.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		features []string
		want     float64
	}{
		{"vocabulary features", nil, 2},
		{"declared features", []string{"my_own_thing", "content_viewed", "never_seen"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc, err := c.For(&healthv1.Model{Features: tc.features})
			if err != nil {
				t.Fatal(err)
			}
			f, err := mc.Number(`double(features_used("30d"))`)
			if err != nil {
				t.Fatal(err)
			}
			act := measure.NewActivation()
			act.Reset(measure.Input{Agg: agg, Now: now})
			got, err := f(act)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("features_used = %v, want %v", got, tc.want)
			}
		})
	}
}
