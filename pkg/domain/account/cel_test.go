package account

import (
	"fmt"
	"testing"

	"cel.dev/cel-go/cel"
)

// TestBuiltinCallsMatchLateBound holds the direct calls of the built-ins
// (builtinCall) to what CEL's late-bound calls return: values, errors and
// their messages, in nested calls, comprehensions and short-circuits.
func TestBuiltinCallsMatchLateBound(t *testing.T) {
	opts := []cel.EnvOption{cel.Variable("stage", cel.StringType), cel.Variable("days_in_stage", cel.IntType), cel.Variable("x", cel.DynType)}
	direct, err := NewEnv(testConfig, opts...)
	if err != nil {
		t.Fatal(err)
	}
	late, err := NewEnv(testConfig, opts...)
	if err != nil {
		t.Fatal(err)
	}
	late.lateBound = true
	exprs := []string{
		`count("report_created", "14d")`, `count_any(["report_created", "export_run"], "14d")`, `count_any([], "14d")`,
		`count_after_created("report_created", 0, 14)`, `has_event("login")`, `has_event("nope")`,
		`first_seen("login")`, `last_seen("report_created")`, `days_since("report_created")`, `active_users("30d")`,
		`active_users_trend("7d")`, `new_users("90d")`, `features_used("30d")`, `integrations()`, `seats()`,
		`seats_active_ratio()`, `days_since_created()`, `days_since_contract_start()`, `days_until_contract_end()`,
		`trait("industry")`, `arr()`, `plan()`, `segment()`, `nps()`, `open_tickets("P1")`, `open_ticket_max_age_days("p2")`,
		`trend("*", "30d")`, `known_users()`, `days_since_champion()`, `usage_limit()`, `persona_days_since("champion")`,
		// Nested built-ins share the argument stack.
		`count(trait("industry"), "30d") + count("report_created", segment() == "mid-market" ? "30d" : "7d")`,
		`count_any([trait("industry"), "report_created", plan()], "60d")`,
		`has_event(stage) || days_since(trait("nope")) > 3`,
		// A window that fails at run time, alone and absorbed by || and &&.
		`count("report_created", trait("industry"))`, `count("report_created", trait("industry")) > 0 || true`,
		`false && count("report_created", stage) > 0`, `active_users(stage) > 0 || has_event("login")`,
		// Comprehensions evaluate the built-ins in a nested scope.
		`["login", "nope"].exists(n, has_event(n))`, `["7d", "30d"].map(w, active_users(w))`,
		`["7d", "30d"].all(w, count("*", w) > days_in_stage)`,
		// Dynamic arguments are checked against the signature at run time.
		`count(x, "30d")`, `has_event(x)`, `count_any(x, "30d")`, `trend("*", x)`,
	}
	a := fixture(t)
	for _, dyn := range []any{"report_created", 7, []any{"login", 3}, []string{"login", "report_created"}} {
		vars := map[string]any{"stage": "adoption", "days_in_stage": int64(12), "x": dyn}
		for _, acct := range []*Aggregates{a, nil} {
			dev, lev := direct.NewEvaluator(), late.NewEvaluator()
			dev.Reset(acct, day(60), vars)
			lev.Reset(acct, day(60), vars)
			for _, x := range exprs {
				dp, err := direct.compile(x, 0)
				if err != nil {
					t.Fatalf("%s: %v", x, err)
				}
				lp, err := late.compile(x, 0)
				if err != nil {
					t.Fatal(err)
				}
				dv, derr := dp.eval(dev)
				lv, lerr := lp.eval(lev)
				if (derr == nil) != (lerr == nil) || (derr != nil && derr.Error() != lerr.Error()) {
					t.Errorf("%s (x=%v): error %v, late-bound %v", x, dyn, derr, lerr)
					continue
				}
				if derr == nil && (dv.Type() != lv.Type() || fmt.Sprint(dv.Value()) != fmt.Sprint(lv.Value())) {
					t.Errorf("%s (x=%v): %v, late-bound %v", x, dyn, dv, lv)
				}
				if len(dev.stack) != 0 {
					t.Errorf("%s: %d arguments left on the stack", x, len(dev.stack))
				}
			}
		}
	}
}
