package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
)

// newDemoEnv serves the dev server's demo fakes behind the real gateway, as
// the dashboard sees them.
func newDemoEnv(t *testing.T) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	gs := grpc.NewServer()
	fakes.NewDemo(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)).Register(gs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := New(ctx, Config{Upstreams: Upstreams{Ingestion: cc, Stages: cc, Health: cc, Routing: cc}, Auth: fakes.Keys{}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		_ = cc.Close()
		gs.Stop()
		<-done
	})
	return srv
}

func getJSON(t *testing.T, srv *httptest.Server, path string, out any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+fakes.ReadKey)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type restLifecycle struct {
	Status string `json:"status"`
	Since  string `json:"since"`
}

// TestDemoTellsTheTrueStory checks, through the gateway's REST API, the
// fields the dashboard shows from the dev server's demo: statuses, the
// funnel adding up, churned accounts out of live lists, and the open queue.
func TestDemoTellsTheTrueStory(t *testing.T) {
	srv := newDemoEnv(t)

	t.Run("funnel adds up", func(t *testing.T) {
		var f struct {
			Stages []struct {
				Current, Entered, Converted, Dropped, Churned, EnteredDirectly int64
			} `json:"stages"`
			Accounts         int64 `json:"accounts"`
			Churned          int64 `json:"churned"`
			NotPlaced        int64 `json:"notPlaced"`
			TotalAccounts    int64 `json:"totalAccounts"`
			NotPlacedReasons []struct {
				Reason string `json:"reason"`
			} `json:"notPlacedReasons"`
		}
		getJSON(t, srv, "/v1/funnel", &f)
		var current, churned, direct int64
		for _, s := range f.Stages {
			current += s.Current
			churned += s.Churned
			direct += s.EnteredDirectly
			if s.Dropped > s.Entered-s.Converted-s.Churned {
				t.Errorf("stage %+v: dropped > entered - converted - churned", s)
			}
		}
		if f.TotalAccounts != current+f.Churned+f.NotPlaced || f.Accounts != f.TotalAccounts-f.Churned {
			t.Errorf("total %d, in stages %d, churned %d, not placed %d, live %d: does not add up", f.TotalAccounts, current, f.Churned, f.NotPlaced, f.Accounts)
		}
		if f.Churned == 0 || churned != f.Churned || f.NotPlaced == 0 || len(f.NotPlacedReasons) == 0 || direct == 0 {
			t.Errorf("demo lacks churned (%d, per stage %d), not placed (%d, %d reasons) or direct entries (%d)", f.Churned, churned, f.NotPlaced, len(f.NotPlacedReasons), direct)
		}
	})

	type summary struct {
		AccountID string `json:"accountId"`
		Stage     string `json:"stage"`
		Status    string `json:"status"`
	}
	for _, tc := range []struct {
		name, query string
		want        func(summary) bool
	}{
		{"live by default", "", func(a summary) bool { return a.Status != "ACCOUNT_STATUS_CHURNED" && a.Stage != "" }},
		{"churned on request", "?status=ACCOUNT_STATUS_CHURNED", func(a summary) bool { return a.Status == "ACCOUNT_STATUS_CHURNED" && a.Stage == "" }},
	} {
		t.Run("accounts "+tc.name, func(t *testing.T) {
			var r struct{ Accounts []summary }
			getJSON(t, srv, "/v1/journey/accounts"+tc.query, &r)
			if len(r.Accounts) == 0 {
				t.Fatal("no accounts")
			}
			for _, a := range r.Accounts {
				if !tc.want(a) {
					t.Errorf("%+v listed", a)
				}
			}
		})
	}

	t.Run("health lists paying accounts only", func(t *testing.T) {
		var r struct{ Accounts []struct{ AccountID string } }
		getJSON(t, srv, "/v1/health/accounts", &r)
		for _, a := range r.Accounts {
			if a.AccountID == fakes.DemoChurned || a.AccountID == fakes.DemoTrial || a.AccountID == fakes.DemoProspect {
				t.Errorf("%s in the health list", a.AccountID)
			}
		}
	})

	for _, tc := range []struct {
		id, status string
		scored     bool
	}{
		{fakes.DemoChurned, "ACCOUNT_STATUS_CHURNED", false},
		{fakes.DemoTrial, "ACCOUNT_STATUS_TRIAL", false},
		{fakes.DemoProspect, "ACCOUNT_STATUS_PROSPECT", false},
		{fakes.DemoWonBack, "ACCOUNT_STATUS_WON_BACK", true},
	} {
		t.Run("account "+tc.id, func(t *testing.T) {
			var j struct {
				Journey struct {
					Stage     string        `json:"stage"`
					Lifecycle restLifecycle `json:"lifecycle"`
					AsOf      string        `json:"asOf"`
				}
			}
			getJSON(t, srv, "/v1/accounts/"+tc.id+"/journey", &j)
			var h struct {
				Health struct {
					Scored    bool          `json:"scored"`
					Lifecycle restLifecycle `json:"lifecycle"`
				}
			}
			getJSON(t, srv, "/v1/accounts/"+tc.id+"/health", &h)
			if j.Journey.Lifecycle.Status != tc.status || h.Health.Lifecycle.Status != tc.status || j.Journey.Lifecycle.Since == "" || j.Journey.AsOf == "" {
				t.Errorf("journey %+v, health %+v: want status %s with since and as of", j.Journey, h.Health, tc.status)
			}
			if h.Health.Scored != tc.scored {
				t.Errorf("scored = %v, want %v", h.Health.Scored, tc.scored)
			}
			if (tc.status == "ACCOUNT_STATUS_CHURNED") != (j.Journey.Stage == "") {
				t.Errorf("stage %q for status %s", j.Journey.Stage, tc.status)
			}
		})
	}

	t.Run("open queue is open work, soonest due first", func(t *testing.T) {
		var r struct {
			Assignments []struct {
				AccountID   string `json:"accountId"`
				State       string `json:"state"`
				CloseReason string `json:"closeReason"`
				Sla         struct {
					DueAt   time.Time `json:"dueAt"`
					MetLate bool      `json:"metLate"`
				} `json:"sla"`
			}
		}
		getJSON(t, srv, "/v1/assignments?openQueue=true", &r)
		if len(r.Assignments) == 0 {
			t.Fatal("empty queue")
		}
		for i, a := range r.Assignments {
			if a.State != "ASSIGNMENT_STATE_OPEN" && a.State != "ASSIGNMENT_STATE_BREACHED" || a.Sla.MetLate || a.CloseReason != "" {
				t.Errorf("%+v in the open queue", a)
			}
			if i > 0 && a.Sla.DueAt.Before(r.Assignments[i-1].Sla.DueAt) {
				t.Errorf("queue not in due order at %d", i)
			}
		}
		var all struct {
			Assignments []struct {
				CloseReason string `json:"closeReason"`
				Sla         struct {
					MetLate bool `json:"metLate"`
				} `json:"sla"`
			}
		}
		getJSON(t, srv, "/v1/assignments", &all)
		var late, churned int
		for _, a := range all.Assignments {
			if a.Sla.MetLate {
				late++
			}
			if a.CloseReason == "churned" {
				churned++
			}
		}
		if late == 0 || churned == 0 {
			t.Errorf("demo has %d met-late and %d closed-as-churned handoffs, want some of each", late, churned)
		}
	})

	t.Run("report splits outcomes", func(t *testing.T) {
		var r struct {
			Rows []struct {
				GroupBy           string  `json:"groupBy"`
				MetOnTime         int64   `json:"metOnTime"`
				MetLate           int64   `json:"metLate"`
				BreachedUntouched int64   `json:"breachedUntouched"`
				Attainment        float64 `json:"attainment"`
			}
		}
		getJSON(t, srv, "/v1/routing/report", &r)
		var on, late, untouched int64
		for _, x := range r.Rows {
			if x.GroupBy != "type" {
				continue
			}
			on, late, untouched = on+x.MetOnTime, late+x.MetLate, untouched+x.BreachedUntouched
			if n := x.MetOnTime + x.MetLate + x.BreachedUntouched; n > 0 && x.Attainment != float64(x.MetOnTime)/float64(n) {
				t.Errorf("%+v: attainment is not met on time / judged", x)
			}
		}
		if on == 0 || late == 0 || untouched == 0 {
			t.Errorf("report met on time %d, met late %d, breached untouched %d: want each", on, late, untouched)
		}
	})
}
