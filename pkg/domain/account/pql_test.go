package account

import (
	"slices"
	"testing"
)

func TestStatusGuard(t *testing.T) {
	env, err := NewPQLEnv()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		want []string
	}{
		{`status == "trial" && active_users("14d") >= 3 && features_used("14d") >= 2`, []string{"trial"}},
		{`integrations() >= 1 && "trial" == status`, []string{"trial"}},
		{`(status == "trial" && true) && (false && status == "customer")`, []string{"trial", "customer"}},
		{`status == "trial" || integrations() >= 1`, nil},
		{`!(status == "trial")`, nil},
		{`status != "trial" && true`, nil},
		{`status == stage`, nil},
		{`account.status == "trial"`, nil},
		{`["trial"].exists(status, status == "trial")`, nil},
		{`status == "trial" &&`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := env.StatusGuard(tt.expr); !slices.Equal(got, tt.want) {
				t.Fatalf("StatusGuard = %q, want %q", got, tt.want)
			}
		})
	}
}
