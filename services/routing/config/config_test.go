package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
)

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile("../testdata/routing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, owners, pools, err := Parse(data)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(owners) != 6 || len(pools) != 4 || len(cfg.GetRules()) != 4 || len(cfg.GetPqlRules()) != 2 || len(cfg.GetSlaPolicies()) != 2 {
		t.Fatalf("counts: %d owners %d pools %d rules %d pql %d sla", len(owners), len(pools), len(cfg.GetRules()), len(cfg.GetPqlRules()), len(cfg.GetSlaPolicies()))
	}
	if _, errs := rules.Compile(cfg); len(errs) > 0 {
		t.Fatalf("example does not compile: %v", errs)
	}
	bob := owners[1]
	if bob.GetWeight() != 2 || len(bob.GetWorkingHours()) != 5 || bob.GetWorkingHours()[4].GetEnd() != "12:00" || bob.GetWorkingHours()[0].GetWeekday() != 1 {
		t.Fatalf("bob parsed as %v", bob)
	}
	if got := cfg.GetSlaPolicies()[1].GetWithin().AsDuration(); got != 16*time.Hour {
		t.Fatalf("2d parsed as %s", got)
	}
	if pools[0].GetStrategy() != routingv1.Strategy_STRATEGY_WEIGHTED_ROUND_ROBIN {
		t.Fatalf("strategy %s", pools[0].GetStrategy())
	}
	// Format then Parse gives the same config back.
	out, err := Format(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, _, _, err := Parse(out)
	if err != nil {
		t.Fatalf("reparse: %v\n%s", err, out)
	}
	if !proto.Equal(cfg, again) {
		t.Fatalf("round trip differs:\n%v\n%v", cfg, again)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		path string
	}{
		{"unknown field", "rulez: []", "field rulez not found"},
		{"bad action", "rules: [{name: r, action: teleport}]", "rules[0].action"},
		{"bad type", "rules: [{name: r, action: pool, pool: p, types: [lead]}]", "rules[0].types[0]"},
		{"bad team", "owners: [{id: a, team: pirates}]", "owners[0].team"},
		{"bad zone", "owners: [{id: a, time_zone: Mars/Olympus}]", "owners[0].time_zone"},
		{"bad weekday", "owners: [{id: a, working_hours: [{weekday: funday, start: '09:00', end: '17:00'}]}]", "owners[0].working_hours[0].weekday"},
		{"bad ooo", "owners: [{id: a, out_of_office: {start: tomorrow}}]", "owners[0].out_of_office.start"},
		{"owner without id", "owners: [{name: x}]", "owners[0].id"},
		{"bad strategy", "pools: [{id: p, strategy: random}]", "pools[0].strategy"},
		{"bad within", "sla_policies: [{name: s, type: mql, within: soon}]", "sla_policies[0].within"},
		{"negative days", "sla_policies: [{name: s, type: mql, within: -1d}]", "sla_policies[0].within"},
		{"not yaml", "rules: [", "decode YAML"},
		{"wrong kind", "kind: journey", "kind"},
		{"two documents", "fallback_pool: a\n---\nfallback_pool: b\n", "line 2: a second YAML document: multi-document files are not supported"},
		{"capacity .nan", "owners:\n  - id: a\n    capacity: .nan\n", "owners[0].capacity: line 3: .nan is not a finite number"},
		{"weight out of range", "owners:\n  - id: a\n    weight: 1e400\n", "owners[0].weight: line 3: number 1e400 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error %v, want one naming %q", err, tt.path)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../testdata/routing.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("rules: [{name: r, action: pool, pool: p}]"))
	f.Add([]byte("sla_policies: [{name: s, type: mql, within: 1.5d}]"))
	f.Add([]byte("owners: [{id: a, working_hours: [{weekday: '7'}]}]"))
	f.Add([]byte("owners: [{id: a, capacity: .inf}]\n---\nrules: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, _, err := Parse(data)
		if err != nil {
			// Every refusal says what is wrong, and a second document or
			// a non-finite number is never let through.
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("Parse = %v, want an *Error listing problems", err)
			}
			for _, p := range ce.Problems {
				if p.GetMessage() == "" {
					t.Fatalf("problem without a message: %v", p)
				}
			}
			return
		}
		if yerr := yamldoc.Check(data); yerr != nil {
			t.Fatalf("Parse accepted a file yamldoc refuses: %v", yerr)
		}
		out, err := Format(cfg)
		if err != nil {
			t.Fatalf("format parsed config: %v", err)
		}
		if _, _, _, err := Parse(out); err != nil {
			t.Fatalf("formatted config does not parse: %v\n%s", err, out)
		}
	})
}
