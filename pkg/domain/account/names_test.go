package account_test

import (
	"strings"
	"testing"

	"cel.dev/cel-go/cel"

	"github.com/cairn-dev/cairn/pkg/domain/account"
)

func TestEventNames(t *testing.T) {
	env, err := account.NewEnv(account.Config{}, cel.Variable("stage", cel.StringType), cel.Variable("days_in_stage", cel.IntType))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		want string
	}{
		{`has_event("activated")`, "activated"},
		{`has_event("b") && count("a", "30d") > 2 || days_since("a") < 7`, "a,b"},
		{`count_any(["x", "y"], "7d") >= 1 && trend("*", "30d") > 0.5 && trend("", "7d") < 0`, "x,y"},
		{`count_after_created("crm.mql", 0, 14) > 0 && first_seen("z") < last_seen("z")`, "crm.mql,z"},
		{`features_used("30d") >= 3 && stage == "adoption" && days_in_stage > 10`, ""},
	}
	for _, tc := range tests {
		got, err := env.EventNames(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("EventNames(%s) = %v, want %s", tc.expr, got, tc.want)
		}
	}
	if _, err := env.EventNames(`has_event(`); err == nil {
		t.Error("a broken expression compiled")
	}
}
