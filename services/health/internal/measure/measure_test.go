package measure_test

import (
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/measure"
)

func track(acct, user, name string, at time.Time) *ingestionv1.Event {
	return &ingestionv1.Event{Workspace: "w", AccountId: acct, Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
		UserId: user, Event: name, Timestamp: timestamppb.New(at)}
}

// TestActivationReuse evaluates measures and a condition for two accounts
// through one Activation, as a rescore worker does, and checks the stage
// variables.
func TestActivationReuse(t *testing.T) {
	c, err := measure.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	users, err := c.Number(`double(active_users("30d"))`)
	if err != nil {
		t.Fatal(err)
	}
	product, err := c.Number(`count("", "7d")`)
	if err != nil {
		t.Fatal(err)
	}
	inStage, err := c.Bool(`stage == "adoption" && days_in_stage > 2.0`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	one, two := account.New("w", "one"), account.New("w", "two")
	one.Apply(track("one", "u1", "report_created", now.Add(-time.Hour)), &measure.Config)
	for _, u := range []string{"u1", "u2", "u3"} {
		two.Apply(track("two", u, "report_created", now.Add(-48*time.Hour)), &measure.Config)
	}
	two.Apply(track("two", "", "billing.renewed", now), &measure.Config)

	act := measure.NewActivation()
	tests := []struct {
		in             measure.Input
		users, product float64
		inStage        bool
	}{
		{measure.Input{Agg: one, Now: now, Stage: "onboarding", EnteredAt: now.AddDate(0, 0, -5)}, 1, 1, false},
		{measure.Input{Agg: two, Now: now, Stage: "adoption", EnteredAt: now.AddDate(0, 0, -3)}, 3, 3, true},
		{measure.Input{Agg: one, Now: now, Stage: "adoption", EnteredAt: now.AddDate(0, 0, -1)}, 1, 1, false},
	}
	for i, tt := range tests {
		act.Reset(tt.in)
		if got, err := users(act); err != nil || got != tt.users {
			t.Errorf("%d: active users = %v, %v; want %v", i, got, err, tt.users)
		}
		if got, err := product(act); err != nil || got != tt.product {
			t.Errorf("%d: product events = %v, %v; want %v", i, got, err, tt.product)
		}
		if got, err := inStage(act); err != nil || got != tt.inStage {
			t.Errorf("%d: in stage = %v, %v; want %v", i, got, err, tt.inStage)
		}
	}
	if _, err := users("not an activation"); err == nil {
		t.Error("a measure accepted an input that is not an Activation")
	}
}
