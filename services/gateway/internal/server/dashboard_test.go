package server

import (
	"net/http"
	"testing"

	"github.com/cairn-dev/cairn/services/gateway/internal/dashboard"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
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

// TestDashboardKPIs serves the council KPIs over the demo fakes: every KPI
// with a name, a unit and its definition, and a bad period refused naming
// the parameter.
func TestDashboardKPIs(t *testing.T) {
	srv := newDemoEnv(t)
	var rep dashboard.KPIReport
	getJSON(t, srv, "/v1/dashboard/kpis?from=2026-01-01&to=2026-12-31&segment=smb", &rep)
	if len(rep.KPIs) != 7 {
		t.Fatalf("KPIs = %d, want 7", len(rep.KPIs))
	}
	for _, k := range rep.KPIs {
		if k.Name == "" || k.Unit == "" || k.Definition != dashboard.Definition(k.ID) {
			t.Errorf("%s: name %q, unit %q, definition %q", k.ID, k.Name, k.Unit, k.Definition)
		}
	}
	if rep.Segment != "smb" || len(rep.Segments) == 0 {
		t.Errorf("segment %q, segments %v", rep.Segment, rep.Segments)
	}
	for _, q := range []string{"from=soon", "to=2026-02-30", "from=2026-03-02&to=2026-03-01"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/dashboard/kpis?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+fakes.ReadKey)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, resp.StatusCode)
		}
	}
}
