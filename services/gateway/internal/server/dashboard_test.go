package server

import (
	"net/http"
	"testing"

	"github.com/cairn-dev/cairn/services/gateway/internal/dashboard"
)

// TestDashboardAccounts serves the joined account report over the demo
// fakes: every row is one account, and the portfolio counts only paying
// rows, each band and breakdown adding up to the customers.
func TestDashboardAccounts(t *testing.T) {
	srv := newDemoEnv(t)
	var rep dashboard.Report
	getJSON(t, srv, "/v1/dashboard/accounts", &rep)
	if len(rep.Rows) == 0 {
		t.Fatal("no rows")
	}
	seen := map[string]bool{}
	paying := 0
	for _, r := range rep.Rows {
		if seen[r.AccountID] {
			t.Errorf("account %s listed twice", r.AccountID)
		}
		seen[r.AccountID] = true
		if r.Paying() {
			paying++
		}
	}
	p := rep.Portfolio
	if p.Customers != paying {
		t.Errorf("customers = %d, want the %d paying rows", p.Customers, paying)
	}
	for name, gs := range map[string][]*dashboard.Group{"band": p.Bands, "owner": p.ByOwner, "segment": p.BySegment, "plan": p.ByPlan} {
		n := 0
		for _, g := range gs {
			n += g.Accounts
		}
		if n != paying {
			t.Errorf("%s groups add up to %d, want %d", name, n, paying)
		}
	}
}

func TestDashboardAccountsNeedsAKey(t *testing.T) {
	srv := newDemoEnv(t)
	resp, err := http.Get(srv.URL + "/v1/dashboard/accounts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.StatusCode)
	}
}
