package app

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
)

// TestListAccountsMilestones lists an account's milestones only when asked:
// when it became a customer, its first value, features used, its ARR
// changes and renewals.
func TestListAccountsMilestones(t *testing.T) {
	const ws = "w"
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0.Add(40 * 24 * time.Hour))
	r := newRig(t, storetest.Open(t), clk)
	evs := []struct {
		days  int
		event scenarioEvent
	}{
		{0, scenarioEvent{Account: "c1", User: "u1", Event: "billing.subscription_started", Props: map[string]any{"arr": 1000}}},
		{0, scenarioEvent{Account: "c1", User: "u1", Event: "contract_signed"}},
		{12, scenarioEvent{Account: "c1", User: "u1", Event: "activated"}},
		{20, scenarioEvent{Account: "c1", User: "u1", Event: "billing.contract_updated", Props: map[string]any{"arr": 1500}}},
		{30, scenarioEvent{Account: "c1", User: "u1", Event: "billing.renewed", Props: map[string]any{"arr": 1500}}},
	}
	for i, e := range evs {
		r.apply(e.event.proto(t, ws, t0.Add(time.Duration(e.days)*24*time.Hour), string(rune('a'+i))))
	}
	ctx := context.Background()
	plain, _, _, err := r.app.ListAccounts(ctx, ws, "", journey.AccountFilter{}, nil, 10)
	if err != nil || len(plain) != 1 || plain[0].GetMilestones() != nil {
		t.Fatalf("without milestones: %v, %v; want c1 without milestones", plain, err)
	}
	got, _, _, err := r.app.ListAccounts(ctx, ws, "", journey.AccountFilter{Milestones: true}, nil, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("with milestones: %v, %v", got, err)
	}
	m := got[0].GetMilestones()
	h := m.GetLifecycle().GetHistory()
	if len(h) < 2 || h[1].GetStatus() != account.StatusCustomer.Proto() || !h[1].GetAt().AsTime().Equal(t0) {
		t.Errorf("lifecycle = %v, want customer at %v", h, t0)
	}
	if fv := m.GetFirstValueAt().AsTime(); !fv.Equal(t0.Add(12 * 24 * time.Hour)) {
		t.Errorf("first value at %v, want day 12", fv)
	}
	if m.GetArr() != 1500 || len(m.GetArrHistory()) != 2 || m.GetArrHistory()[0].GetArr() != 1000 || m.GetArrHistory()[1].GetArr() != 1500 {
		t.Errorf("ARR %v, history %v; want 1500 after 1000", m.GetArr(), m.GetArrHistory())
	}
	if len(m.GetRenewedAt()) != 1 || !m.GetRenewedAt()[0].AsTime().Equal(t0.Add(30*24*time.Hour)) {
		t.Errorf("renewed at %v, want day 30", m.GetRenewedAt())
	}
}
