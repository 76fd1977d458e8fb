package app

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// TestChurnedBeforeUpgradeLeavesOnTimer covers state written before stages
// took churn out of the journey: an account still placed although its
// aggregates say churned, with no status kept. Lists derive its status from
// the aggregates, and its next timer takes it out of its stage.
func TestChurnedBeforeUpgradeLeavesOnTimer(t *testing.T) {
	const ws = "w"
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0)
	r := newRig(t, storetest.Open(t), clk)
	ev := func(name string) scenarioEvent { return scenarioEvent{Account: "c1", User: "u1", Event: name} }
	r.apply(ev("contract_signed").proto(t, ws, t0, "m1"))
	jid := journey.DefaultJourney
	// What an older stages left behind: the churn applied to the
	// aggregates, the account left in its stage, no status kept.
	err := r.db.Update(func(tx *pstore.Tx) error {
		acc, err := store.Live.GetAccount(tx, ws, jid, "c1")
		if err != nil {
			return err
		}
		c, err := r.app.compiled(tx, ws, jid, acc.Journey.GetVersion())
		if err != nil {
			return err
		}
		acc.Aggs.Apply(ev("billing.churned").proto(t, ws, t0.Add(time.Hour), "m2"), &c.j.Config)
		acc.Journey.Lifecycle = nil
		return store.Live.PutAccount(tx, acc)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.account(ws, jid, "c1").Journey.GetStage(); got != "onboarding" {
		t.Fatalf("stage before the timer = %q", got)
	}
	ctx := context.Background()
	live, _, _, err := r.app.ListAccounts(ctx, ws, "", journey.AccountFilter{}, nil, 10)
	if err != nil || len(live) != 0 {
		t.Errorf("live accounts = %v, %v; want none (c1 churned)", live, err)
	}
	churned, _, _, err := r.app.ListAccounts(ctx, ws, "", journey.AccountFilter{Statuses: []account.Status{account.StatusChurned}}, nil, 10)
	if err != nil || len(churned) != 1 || churned[0].GetStatus() != account.StatusChurned.Proto() {
		t.Errorf("churned accounts = %v, %v; want c1", churned, err)
	}
	clk.Set(t0.Add(24 * time.Hour))
	if _, err := r.app.FireDue(ctx, clk.Now()); err != nil {
		t.Fatal(err)
	}
	acc := r.account(ws, jid, "c1")
	if acc.Journey.GetStage() != "" || account.StatusOf(acc.Journey.GetLifecycle().GetStatus()) != account.StatusChurned {
		t.Errorf("after the timer: stage %q, lifecycle %v", acc.Journey.GetStage(), acc.Journey.GetLifecycle())
	}
	if got, want := r.published()["c1"], []string{">onboarding", "onboarding>"}; !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	f, err := r.app.Funnel(ctx, ws, &journey.FunnelQuery{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if f.GetChurned() != 1 || f.GetAccounts() != 0 || f.GetStages()[2].GetChurned() != 1 || f.GetStages()[2].GetCurrent() != 0 || f.GetStages()[2].GetEnteredDirectly() != 1 {
		t.Errorf("funnel = %v", f)
	}
	// No timer is left for a churned account.
	if n, err := r.app.FireDue(ctx, t0.Add(400*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("timers fired for a churned account: %d, %v", n, err)
	}
}
