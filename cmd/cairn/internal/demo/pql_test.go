package demo

import (
	"strings"
	"testing"
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	routingconfig "github.com/cairn-dev/cairn/services/routing/config"
)

// TestDemoPQLRules checks that routing accepts the demo's PQL rules and
// that the generator compiles the same ones.
func TestDemoPQLRules(t *testing.T) {
	cfg, _, _, err := routingconfig.Parse(RoutingYAML)
	if err != nil {
		t.Fatalf("routing refuses the demo config: %v", err)
	}
	rules, err := demoPQL()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != len(cfg.GetPqlRules()) || len(rules) < 2 {
		t.Fatalf("the generator compiled %d PQL rules, routing %d; want the same, at least 2", len(rules), len(cfg.GetPqlRules()))
	}
	for i, r := range cfg.GetPqlRules() {
		if rules[i].name != r.GetName() || rules[i].prg.Expr() != r.GetCondition() {
			t.Errorf("rule %d: generator %q %q, routing %q %q", i, rules[i].name, rules[i].prg.Expr(), r.GetName(), r.GetCondition())
		}
		// Only names of the event vocabulary, as ingestion logs them.
		names, err := rules[i].prg.Env().EventNames(r.GetCondition())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if e, ok := vocab.Lookup(n); !ok || e.Name != n {
				t.Errorf("rule %s reads %q, which is not a canonical name of the event vocabulary", r.GetName(), n)
			}
		}
	}
	found := false
	for _, p := range cfg.GetSlaPolicies() {
		found = found || p.GetType() == routingv1.HandoffType_HANDOFF_TYPE_PQL
	}
	if !found {
		t.Error("the demo config has no SLA policy for PQL handoffs")
	}
}

func TestCompilePQL(t *testing.T) {
	tests := []struct {
		name, yaml, err string
		rules           int
	}{
		{"none", "fallback_pool: p\n", "", 0},
		{"two", "pql_rules:\n  - {name: a, when: 'status == \"trial\"'}\n  - {name: b, when: 'integrations() >= 1 && active_users(\"7d\") > 2'}\n", "", 2},
		{"unknown function", "pql_rules:\n  - {name: a, when: 'seats_used() > 1'}\n", "pql_rules[0] (a)", 0},
		{"not a bool", "pql_rules:\n  - {name: a, when: 'active_users(\"7d\")'}\n", "pql_rules[0] (a)", 0},
		{"bad yaml", "pql_rules: {", "read pql_rules", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := compilePQL([]byte(tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || len(rules) != tt.rules {
				t.Fatalf("rules %d, err %v; want %d", len(rules), err, tt.rules)
			}
		})
	}
}

// TestDemoAnswersPQLs checks that the demo's trials qualify as PQLs and
// that every PQL touch is the SDR answering a trial: after the account's
// trial started, and mostly within the hour the SLA allows.
func TestDemoAnswersPQLs(t *testing.T) {
	ds := Generate(Options{Seed: 1, Accounts: 150, Now: fixedNow})
	trialStart := map[string]time.Time{}
	var touches []Event
	for _, ev := range ds.Events {
		g, _ := ev.Context["groupId"].(string)
		switch {
		case ev.Event == "trial_started":
			trialStart[g] = ev.Timestamp
		case ev.Event == "crm.contacted" && ev.Properties["purpose"] == "pql":
			touches = append(touches, ev)
		}
	}
	if len(touches) < 5 {
		t.Fatalf("%d PQL touches in 150 accounts with %d trials, want the demo's trials to qualify", len(touches), len(trialStart))
	}
	// The trigger is the latest event of the account before the touch
	// that is not a touch itself; an on-time answer comes 10-50 minutes
	// after it.
	onTime := 0
	for _, tc := range touches {
		g := tc.Context["groupId"].(string)
		start, ok := trialStart[g]
		if !ok || !tc.Timestamp.After(start) {
			t.Errorf("%s: PQL touch at %s, but its trial started at %v", g, tc.Timestamp, start)
			continue
		}
		var last time.Time
		for _, ev := range ds.Events {
			if c, _ := ev.Context["groupId"].(string); c == g && ev.Event != "crm.contacted" && ev.Timestamp.Before(tc.Timestamp) && ev.Timestamp.After(last) {
				last = ev.Timestamp
			}
		}
		if d := tc.Timestamp.Sub(last); d >= 10*time.Minute && d <= 50*time.Minute {
			onTime++
		}
	}
	if share := float64(onTime) / float64(len(touches)); share < 0.6 || share == 1 {
		t.Errorf("%d of %d PQL touches within 10-50 minutes of the account's previous event, want most but not all", onTime, len(touches))
	}
}
