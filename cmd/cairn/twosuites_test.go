package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// defaultPortsFree reports whether `cairn run` without --base-port could
// bind every port it uses.
func defaultPortsFree() bool {
	ports := []int{8080}
	for i := 1; i <= 5; i++ {
		ports = append(ports, 7100+i, 9100+i)
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// TestTwoSuitesKeepApart runs two suites on one machine, one on the default
// ports (when they are free) and one with --base-port, and checks that
// each service reads only its own suite's upstreams: an account sent to
// one suite reaches its stages, health (with its stage) and routing, and
// nothing of the other's. Then a suite started without stages is not
// ready, and `cairn run` says that health cannot reach stages at its own
// suite's address.
func TestTwoSuitesKeepApart(t *testing.T) {
	if testing.Short() {
		t.Skip("two suites: builds and runs every binary twice")
	}
	root := workspaceRoot(t)
	bin := t.TempDir()
	built := buildSuite(t, root, bin)
	for _, s := range []string{"ingestion", "stages", "health", "routing"} {
		if !strings.Contains(strings.Join(built, ","), s) {
			t.Fatalf("%s does not build", s)
		}
	}
	services := "--services=ingestion,stages,health,routing"
	var other *runningSuite
	if defaultPortsFree() {
		other = startSuite(t, bin, true, services, "--demo-accounts", "8", "--now", e2eNow, "--partitions", "4")
	} else {
		t.Logf("NOT COVERED: the default ports are busy, so the other suite uses a --base-port of its own")
		other = startSuite(t, bin, true, services, "--base-port", fmt.Sprint(testport.Base(t, 25)), "--demo-accounts", "8", "--now", e2eNow, "--partitions", "4")
	}
	base := testport.Base(t, 25)
	mine := startSuite(t, bin, true, services, "--base-port", fmt.Sprint(base), "--no-demo", "--partitions", "4")
	for s, addr := range mine.info.GRPC {
		if other.info.GRPC[s] == addr {
			t.Fatalf("both suites serve %s on %s", s, addr)
		}
	}

	const account = "two-suites-acme"
	var nd bytes.Buffer
	for i, ev := range []string{
		`"event":"report_created"`, `"event":"dashboard_shared"`,
		`"event":"crm.mql","properties":{"email":"pat@two-suites-acme.com","score":80}`,
	} {
		fmt.Fprintf(&nd, `{"type":"track","messageId":"two-suites-%d","userId":"pat","context":{"groupId":"%s"},%s,"timestamp":"2026-10-30T10:0%d:00Z"}`+"\n", i, account, ev, i)
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, nd.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(filepath.Join(bin, "cairn"), "ingest", file, "--data", mine.data).CombinedOutput(); err != nil || !strings.Contains(string(b), "accepted 3") {
		t.Fatalf("cairn ingest into the --base-port suite: %v\n%s", err, b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stagesOf := func(s *runningSuite) stagesv1.StagesServiceClient {
		return stagesv1.NewStagesServiceClient(s.conn(t, "stages"))
	}
	healthOf := func(s *runningSuite) healthv1.HealthServiceClient {
		return healthv1.NewHealthServiceClient(s.conn(t, "health"))
	}
	routingOf := func(s *runningSuite) routingv1.RoutingServiceClient {
		return routingv1.NewRoutingServiceClient(s.conn(t, "routing"))
	}
	var stage string
	within(t, 2*time.Minute, "the account in its own suite's stages", func() error {
		resp, err := stagesOf(mine).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: account})
		if err != nil {
			return err
		}
		if stage = resp.GetJourney().GetStage(); stage == "" {
			return errors.New("not placed yet")
		}
		return nil
	})
	within(t, 2*time.Minute, "its own suite's health reads its own stages", func() error {
		resp, err := healthOf(mine).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: account})
		if err != nil {
			return err
		}
		if got := resp.GetHealth().GetStage(); got != stage {
			return fmt.Errorf("health's stage %q, stages says %q", got, stage)
		}
		return nil
	})
	within(t, 2*time.Minute, "its own suite's routing opened the MQL", func() error {
		resp, err := routingOf(mine).ListAssignments(ctx, &routingv1.ListAssignmentsRequest{AccountId: account})
		if err != nil {
			return err
		}
		if len(resp.GetAssignments()) != 1 || resp.GetAssignments()[0].GetType() != routingv1.HandoffType_HANDOFF_TYPE_MQL {
			return fmt.Errorf("assignments %v", resp.GetAssignments())
		}
		return nil
	})
	// The --base-port suite holds that one account only: its consumers read
	// nothing of the other suite's demo.
	funnel, err := stagesOf(mine).GetFunnel(ctx, &stagesv1.GetFunnelRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var placed int64
	for _, st := range funnel.GetStages() {
		placed += st.GetCurrent()
	}
	if placed != 1 {
		t.Errorf("the --base-port suite's stages has %d accounts placed, want 1 (its own)", placed)
	}
	if resp, err := routingOf(mine).ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Page: &commonv1.PageRequest{PageSize: 100}}); err != nil || len(resp.GetAssignments()) != 1 {
		t.Errorf("the --base-port suite's routing has %d assignments (%v), want 1 (its own)", len(resp.GetAssignments()), err)
	}
	// And the other suite knows nothing of it.
	ev, err := ingestionv1.NewIngestionServiceClient(other.conn(t, "ingestion")).ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: account})
	if err != nil || len(ev.GetEvents()) != 0 {
		t.Errorf("the other suite's ingestion has %d events of the account (%v)", len(ev.GetEvents()), err)
	}
	if _, err := stagesOf(other).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: account}); status.Code(err) != codes.NotFound {
		t.Errorf("the other suite's stages: %v, want NotFound", err)
	}
	if _, err := healthOf(other).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: account}); status.Code(err) != codes.NotFound {
		t.Errorf("the other suite's health: %v, want NotFound", err)
	}
	if resp, err := routingOf(other).ListAssignments(ctx, &routingv1.ListAssignmentsRequest{AccountId: account}); err != nil || len(resp.GetAssignments()) != 0 {
		t.Errorf("the other suite's routing has %d assignments of the account (%v)", len(resp.GetAssignments()), err)
	}

	// A suite whose health has no stages to read is not ready, and says
	// which upstream, at which address (its own base port's, not 7102).
	lone := testport.Base(t, 25)
	missing := startSuite(t, bin, false, "--services=ingestion,health", "--base-port", fmt.Sprint(lone), "--no-demo", "--partitions", "4", "--ready-timeout", "5s")
	select {
	case <-missing.exited:
		err := missing.err
		// The supervisor's last word is the reason it stopped:
		// "cairn run: start the suite: health not ready: ... upstream:
		// stages: ... dial tcp 127.0.0.1:<base+2> ...".
		want := fmt.Sprintf("127.0.0.1:%d", lone+2)
		var last string
		for _, line := range strings.Split(missing.out.String(), "\n") {
			if strings.HasPrefix(line, "cairn run:") {
				last = line
			}
		}
		if err == nil || !strings.Contains(last, "health not ready") || !strings.Contains(last, "upstream: stages") || !strings.Contains(last, want) {
			t.Errorf("cairn run without stages: %v, last word %q; want it to stop naming health's stages upstream at %s:\n%s", err, last, want, missing.out)
		}
		t.Logf("%s", last)
	case <-time.After(2 * time.Minute): // failure guard
		t.Fatalf("cairn run without stages did not stop at its ready timeout:\n%s", missing.out)
	}
}
