package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/cli"
	"github.com/cairn-dev/cairn/cmd/cairn/internal/demo"
	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// TestDemoFiguresInRange loads the default demo workspace (seed 1, 300
// accounts, as `cairn run` does for a new user) into the real suite, waits
// until every consumer has caught up, and checks that the
// figures a SaaS operator looks at first land in ranges they recognise:
//
//   - Annual logo churn 5–15%. Definition: let the period be the 365 days
//     ending at the demo's now, P = (now-365d, now]. The denominator is the
//     accounts whose lifecycle status (health's GetAccountHealth.lifecycle,
//     pkg/domain/account.Lifecycle) at the start of P was paying (customer
//     or won back); the numerator is those of them that churned
//     (a CHURNED status change) within P. Customers acquired during P are in
//     neither (in the demo none of them reaches a renewal within P anyway).
//   - Health bands of paying accounts (health ListAccounts lists only
//     those): 50–70% healthy, 20–35% neutral, 10–20% at risk.
//   - SLA attainment (routing GetReport, rows grouped by type, attainment =
//     met_on_time / judged, docs/routing.md) 70–95% for every handoff type
//     with judged clocks, and every SLA policy's type among them; and no
//     risk or renewal handoff met late although the demo touched its
//     account between its creation and its due time (routing judges a
//     touch by its event time, whenever it arrives).
//   - Every stage of the default journey has accounts in it (stages
//     GetFunnel, current > 0).
//
// It builds and runs every binary, like TestSuiteEndToEnd, and takes about
// a minute on two cores; -short skips it (as it skips the end-to-end test),
// a plain `make test` runs it.
func TestDemoFiguresInRange(t *testing.T) {
	if testing.Short() {
		t.Skip("demo ranges: builds and runs the suite with the full demo")
	}
	root := workspaceRoot(t)
	bin := t.TempDir()
	built := buildSuite(t, root, bin)
	services := []string{"ingestion", "stages", "health", "routing"}
	for _, s := range services {
		if !slices.Contains(built, s) {
			t.Fatalf("%s does not build; the demo figures need it", s)
		}
	}
	// A fixed end of the simulated year keeps the workspace (and so the
	// figures) the same every day: `cairn run` uses today, which shifts the
	// date-keyed touch times. Scores are taken at event time either way
	// (health's timers wait for the service clock's next midnight).
	now, _ := time.Parse("2006-01-02", e2eNow)
	opts := demo.Options{Seed: 1, Accounts: 300, Now: now, Workspace: cli.DemoWorkspace}

	started := time.Now()
	suite := startSuite(t, bin, true, "--base-port", fmt.Sprint(testport.Base(t, 25)),
		"--seed", fmt.Sprint(opts.Seed), "--demo-accounts", fmt.Sprint(opts.Accounts), "--now", now.Format("2006-01-02"),
		"--services", strings.Join(services, ","))
	if !strings.Contains(suite.out.String(), "rejected 0 in") {
		t.Fatalf("the demo load rejected events or did not finish (see output)")
	}
	ri := suite.info
	t.Logf("suite up and demo loaded in %s", time.Since(started).Round(time.Second))
	waitCaughtUp(t, ri, services)
	t.Logf("every consumer caught up after %s", time.Since(started).Round(time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(s string) *grpc.ClientConn {
		conn, err := grpc.NewClient(ri.GRPC[s], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.Bearer(ri.AdminKey)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	health := healthv1.NewHealthServiceClient(dial("health"))
	stages := stagesv1.NewStagesServiceClient(dial("stages"))
	routing := routingv1.NewRoutingServiceClient(dial("routing"))
	ds := demo.Generate(opts)

	t.Run("annual logo churn", func(t *testing.T) {
		periodStart := now.AddDate(0, 0, -365)
		var atStart, churned, churnedAny int
		for _, a := range ds.Accounts {
			resp, err := health.GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: a.ID})
			if status.Code(err) == codes.NotFound {
				continue // never identified (anonymous visits only): not an account yet
			}
			if err != nil {
				t.Fatalf("GetAccountHealth(%s): %v", a.ID, err)
			}
			hist := resp.GetHealth().GetLifecycle().GetHistory()
			st := commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED
			churnedIn := false
			for _, c := range hist {
				at := c.GetAt().AsTime()
				if !at.After(periodStart) {
					st = c.GetStatus()
				} else if c.GetStatus() == commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED && !at.After(now.Add(24*time.Hour)) {
					churnedIn = true
				}
			}
			if churnedIn {
				churnedAny++
			}
			if st == commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER || st == commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK {
				atStart++
				if churnedIn {
					churned++
				}
			}
		}
		if atStart == 0 {
			t.Fatal("no paying account at the start of the period")
		}
		rate := float64(churned) / float64(atStart)
		t.Logf("annual logo churn: %d of %d customers at %s churned by %s = %.1f%% (churn events in the period, any account: %d)",
			churned, atStart, periodStart.Format("2006-01-02"), now.Format("2006-01-02"), 100*rate, churnedAny)
		inRange(t, "annual logo churn", rate, 0.05, 0.15)
	})

	t.Run("health bands of paying accounts", func(t *testing.T) {
		bands := map[healthv1.Band]int{}
		trajectory := map[string]string{}
		for _, a := range ds.Accounts {
			trajectory[a.ID] = a.Trajectory
		}
		byTrajectory := map[string]map[healthv1.Band]int{}
		total := 0
		token := ""
		for {
			resp, err := health.ListAccounts(ctx, &healthv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageSize: 1000, PageToken: token}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.GetAccounts() {
				bands[r.GetBand()]++
				total++
				tr := trajectory[r.GetAccountId()]
				if byTrajectory[tr] == nil {
					byTrajectory[tr] = map[healthv1.Band]int{}
				}
				byTrajectory[tr][r.GetBand()]++
			}
			if token = resp.GetPage().GetNextPageToken(); token == "" {
				break
			}
		}
		if total == 0 {
			t.Fatal("health lists no paying account")
		}
		share := func(b healthv1.Band) float64 { return float64(bands[b]) / float64(total) }
		t.Logf("health bands of %d paying accounts: healthy %d (%.0f%%), neutral %d (%.0f%%), at risk %d (%.0f%%)", total,
			bands[healthv1.Band_BAND_HEALTHY], 100*share(healthv1.Band_BAND_HEALTHY),
			bands[healthv1.Band_BAND_NEUTRAL], 100*share(healthv1.Band_BAND_NEUTRAL),
			bands[healthv1.Band_BAND_AT_RISK], 100*share(healthv1.Band_BAND_AT_RISK))
		for tr, b := range byTrajectory {
			t.Logf("  %s accounts: healthy %d, neutral %d, at risk %d", tr, b[healthv1.Band_BAND_HEALTHY], b[healthv1.Band_BAND_NEUTRAL], b[healthv1.Band_BAND_AT_RISK])
		}
		inRange(t, "healthy share", share(healthv1.Band_BAND_HEALTHY), 0.50, 0.70)
		inRange(t, "neutral share", share(healthv1.Band_BAND_NEUTRAL), 0.20, 0.35)
		inRange(t, "at-risk share", share(healthv1.Band_BAND_AT_RISK), 0.10, 0.20)
	})

	t.Run("SLA attainment per handoff type", func(t *testing.T) {
		// Where the risk handoffs come from: health's risk signals by reason.
		reasons := map[string]int{}
		token := ""
		for {
			resp, err := health.ListSignals(ctx, &healthv1.ListSignalsRequest{Kind: commonv1.SignalKind_SIGNAL_KIND_RISK, Page: &commonv1.PageRequest{PageSize: 1000, PageToken: token}})
			if err != nil {
				t.Fatal(err)
			}
			for _, sg := range resp.GetSignals() {
				reasons[sg.GetReason()+"/"+strings.TrimPrefix(sg.GetState().String(), "SIGNAL_STATE_")]++
			}
			if token = resp.GetPage().GetNextPageToken(); token == "" {
				break
			}
		}
		t.Logf("risk signals by reason and state: %v", reasons)
		resp, err := routing.GetReport(ctx, &routingv1.GetReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		judged := map[string]bool{}
		for _, r := range resp.GetRows() {
			if r.GetGroupBy() != "type" {
				continue
			}
			n := r.GetMetOnTime() + r.GetMetLate() + r.GetBreachedUntouched()
			t.Logf("SLA %-12s assignments %4d, judged %4d: on time %4d, late %3d, breached untouched %3d: attainment %.1f%%",
				r.GetKey(), r.GetAssignments(), n, r.GetMetOnTime(), r.GetMetLate(), r.GetBreachedUntouched(), 100*r.GetAttainment())
			if n == 0 {
				continue
			}
			key := strings.ToLower(r.GetKey())
			judged[key] = true
			inRange(t, "SLA attainment of "+r.GetKey(), r.GetAttainment(), 0.70, 0.95)
		}
		// Health-driven handoffs are created from health's log, which
		// trails ingestion's during the bulk load: the touch that answers
		// one has often reached routing first. None may count as late when
		// the demo touched the account between creation and due time.
		touches := map[string][]time.Time{}
		for _, ev := range ds.Events {
			if ev.Event == "crm.contacted" || ev.Event == "crm.meeting_booked" {
				g, _ := ev.Context["groupId"].(string)
				touches[g] = append(touches[g], ev.Timestamp)
			}
		}
		for _, typ := range []routingv1.HandoffType{routingv1.HandoffType_HANDOFF_TYPE_RISK, routingv1.HandoffType_HANDOFF_TYPE_RENEWAL} {
			lateWithTouch, late := 0, 0
			untouchedBy := map[string]int{} // reason/close reason/rule
			token := ""
			for {
				resp, err := routing.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Type: typ, Page: &commonv1.PageRequest{PageSize: 1000, PageToken: token}})
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range resp.GetAssignments() {
					sla := a.GetSla()
					if sla.GetBreached() && a.GetFirstTouchAt() == nil {
						untouchedBy[a.GetReason()+"/"+a.GetCloseReason()+"/"+a.GetDecision().GetRule()]++
					}
					if !sla.GetBreached() || a.GetFirstTouchAt() == nil {
						continue
					}
					late++
					created, due := a.GetCreatedAt().AsTime(), sla.GetDueAt().AsTime()
					for _, tt := range touches[a.GetAccountId()] {
						if !tt.Before(created) && tt.Before(due) {
							lateWithTouch++
							if lateWithTouch <= 3 {
								t.Logf("  late %s %s: created %s due %s first touch %s; a demo touch at %s was in time", typ, a.GetAccountId(),
									created.Format(time.RFC3339), due.Format(time.RFC3339), a.GetFirstTouchAt().AsTime().Format(time.RFC3339), tt.Format(time.RFC3339))
							}
							break
						}
					}
				}
				if token = resp.GetPage().GetNextPageToken(); token == "" {
					break
				}
			}
			t.Logf("%s: %d met late, of which %d had a demo touch between creation and due time", typ, late, lateWithTouch)
			t.Logf("%s breached untouched by reason/close reason/rule: %v", typ, untouchedBy)
			if lateWithTouch > 0 {
				t.Errorf("%s: %d handoffs met late although the demo touched the account in time", typ, lateWithTouch)
			}
		}
		// Every handoff type the demo's routing config holds to an SLA.
		for _, typ := range []string{"mql", "pql", "sql", "closed_won", "risk"} {
			found := false
			for k := range judged {
				if strings.HasSuffix(k, typ) {
					found = true
				}
			}
			if !found {
				t.Errorf("no judged SLA clock of type %s", typ)
			}
		}
	})

	t.Run("every stage of the default journey has accounts", func(t *testing.T) {
		resp, err := stages.GetFunnel(ctx, &stagesv1.GetFunnelRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var line []string
		for _, s := range resp.GetStages() {
			line = append(line, fmt.Sprintf("%s %d (entered %d, flagged %d)", s.GetStage(), s.GetCurrent(), s.GetEntered(), s.GetDropoffSignals()))
		}
		t.Logf("funnel: %s; churned %d, not placed %d, total %d", strings.Join(line, ", "), resp.GetChurned(), resp.GetNotPlaced(), resp.GetTotalAccounts())
		if len(resp.GetStages()) != 5 {
			t.Errorf("the default journey has %d stages, want the five-stage template", len(resp.GetStages()))
		}
		for _, s := range resp.GetStages() {
			if s.GetCurrent() == 0 {
				t.Errorf("stage %s has no account in it", s.GetStage())
			}
		}
	})
}

func inRange(t *testing.T, what string, v, lo, hi float64) {
	t.Helper()
	if v < lo || v > hi {
		t.Errorf("%s = %.1f%%, want %.0f–%.0f%%", what, 100*v, 100*lo, 100*hi)
	}
}

// waitCaughtUp polls every service's metrics until each cairn_consumer_lag
// series is 0, twice in a row, and every service that consumes a log
// reports at least one series (a consumer that has not heard its
// upstream's head yet reports none, or a lag above 0).
func waitCaughtUp(t *testing.T, ri *cli.RunInfo, services []string) {
	t.Helper()
	zeroes := 0
	var last string
	deadline := time.Now().Add(3 * time.Minute) // failure guard, not a speed assertion
	for time.Now().Before(deadline) {
		ok, state := lagsZero(ri, services)
		last = state
		if ok {
			zeroes++
			if zeroes == 2 {
				return
			}
		} else {
			zeroes = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("consumers did not catch up: %s", last)
}

func lagsZero(ri *cli.RunInfo, services []string) (bool, string) {
	var state []string
	ok := true
	for _, s := range services {
		resp, err := http.Get("http://" + ri.Metrics[s] + "/metrics")
		if err != nil {
			return false, fmt.Sprintf("%s: %v", s, err)
		}
		series, total := 0, 0.0
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "cairn_consumer_lag{") {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				continue
			}
			series++
			total += v
		}
		resp.Body.Close()
		state = append(state, fmt.Sprintf("%s lag %.0f over %d series", s, total, series))
		if total != 0 || (s != "ingestion" && series == 0) {
			ok = false
		}
	}
	return ok, strings.Join(state, "; ")
}
