package config

import (
	"os"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"

	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"github.com/cairn-dev/cairn/services/routing/internal/sla"
)

// crmEvents are the CRM events routing acts on (docs/routing.md): MQL and
// SQL handoffs, the closed-won handoff, touches and disqualification.
var crmEvents = []string{"crm.mql", "crm.sql_accepted", "crm.closed_won", "crm.contacted", "crm.meeting_booked", "crm.closed_lost", "crm.lead_disqualified"}

// touchOf is the touch type a CRM event records ("crm.contacted" ->
// "contacted").
func touchOf(event string) string { return strings.TrimPrefix(event, "crm.") }

// TestDefaultsUseTheVocabulary fails when routing's defaults name an event
// the vocabulary (pkg/domain/vocab) does not hold: the CRM events routing
// acts on must be reserved events ingestion accepts under that name, and a
// default SLA policy's satisfied_by may only list touches those events
// record (or the fixed disqualified touch).
func TestDefaultsUseTheVocabulary(t *testing.T) {
	touches := map[string]bool{sla.TouchDisqualified: true}
	for _, name := range crmEvents {
		e, ok := vocab.Lookup(name)
		if !ok || e.Name != name || e.Source != vocab.SourceCRM {
			t.Errorf("routing acts on %s, which is not a canonical CRM event of the vocabulary", name)
		}
		touches[touchOf(name)] = true
	}
	for _, p := range sla.Defaults() {
		for _, touch := range p.GetSatisfiedBy() {
			if !touches[touch] {
				t.Errorf("default policy %s: satisfied_by %q is no touch a vocabulary CRM event records", p.GetName(), touch)
			}
		}
	}
}

// TestExampleConfigUsesTheVocabulary fails when a PQL rule of the complete
// example config (testdata/routing.yaml) reads an event name the vocabulary
// does not hold, or an alias instead of the canonical name.
func TestExampleConfigUsesTheVocabulary(t *testing.T) {
	data, err := os.ReadFile("../testdata/routing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, _, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	// The variables of routing's PQL environment (internal/rules).
	env, err := account.NewEnv(account.Config{},
		cel.Variable("status", cel.StringType),
		cel.Variable("stage", cel.StringType),
		cel.Variable("previous_stage", cel.StringType),
		cel.Variable("health_band", cel.StringType),
		cel.Variable("health_score", cel.DoubleType),
		cel.Variable("signals", cel.ListType(cel.StringType)),
		cel.Variable("account", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GetPqlRules()) == 0 {
		t.Fatal("the example has no PQL rules")
	}
	for _, r := range cfg.GetPqlRules() {
		names, err := env.EventNames(r.GetCondition())
		if err != nil {
			t.Fatalf("pql rule %s: %v", r.GetName(), err)
		}
		for _, n := range names {
			if strings.HasPrefix(n, "page:") || strings.HasPrefix(n, "screen:") {
				continue
			}
			if e, ok := vocab.Lookup(n); !ok || e.Name != n {
				t.Errorf("pql rule %s reads %q, which is not a canonical vocabulary name", r.GetName(), n)
			}
		}
	}
}
