package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/cli"
	"github.com/cairn-dev/cairn/cmd/cairn/internal/demo"
	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// The suite-level end-to-end test: real binaries, real processes, real ports.
// Services are written concurrently with this test, so it starts the ones
// that build and checks what they serve; the log says what was skipped.

var grpcServiceNames = map[string]string{
	"ingestion": "cairn.ingestion.v1.IngestionService",
	"stages":    "cairn.stages.v1.StagesService",
	"health":    "cairn.health.v1.HealthService",
	"routing":   "cairn.routing.v1.RoutingService",
	"plays":     "cairn.plays.v1.PlaysService",
}

const e2eNow = "2026-11-01"

// syncBuffer collects the supervisor's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func workspaceRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Skipf("not inside the go.work workspace: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// buildSuite builds the CLI and every service that compiles into bin, and
// returns the services built.
func buildSuite(t *testing.T, root, bin string) []string {
	t.Helper()
	build := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w\n%s", err, b)
		}
		return nil
	}
	if err := build(filepath.Join(bin, "cairn"), "./cmd/cairn"); err != nil {
		t.Fatalf("build cairn: %v", err)
	}
	var built []string
	for _, s := range []string{"ingestion", "stages", "health", "routing", "plays", "gateway"} {
		if err := build(filepath.Join(bin, "cairn-"+s), "./services/"+s); err != nil {
			t.Logf("NOT COVERED: %s does not build yet, so it is not started: %v", s, err)
			continue
		}
		built = append(built, s)
	}
	return built
}

// within polls cond until it holds or the bound passes. The bound guards
// against a hang; it is not a speed assertion.
func within(t *testing.T, bound time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: still failing after %s: %v", what, bound, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSuiteEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs every binary")
	}
	root := workspaceRoot(t)
	bin := t.TempDir()
	built := buildSuite(t, root, bin)
	if !slices.Contains(built, "ingestion") {
		t.Skip("ingestion does not build yet; nothing to run end to end")
	}
	services := built
	// The gateway's /readyz waits for all four upstreams.
	if slices.Contains(built, "gateway") && len(built) < 5 {
		t.Logf("NOT COVERED: gateway not started because an upstream is missing")
		services = slices.DeleteFunc(slices.Clone(built), func(s string) bool { return s == "gateway" })
	}
	suite := startSuite(t, bin, true, "--base-port", fmt.Sprint(testport.Base(t, 25)),
		"--demo-accounts", "30", "--now", e2eNow, "--services", strings.Join(services, ","), "--partitions", "4")
	data, out, ri := suite.data, suite.out, suite.info
	t.Logf("suite up with %v", services)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conns := map[string]*grpc.ClientConn{}
	for _, s := range services {
		if s == "gateway" {
			continue
		}
		conn, err := grpc.NewClient(ri.GRPC[s], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.Bearer(ri.AdminKey)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[s] = conn
	}

	t.Run("health and reflection", func(t *testing.T) {
		for s, conn := range conns {
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s health = %v, %v", s, resp.GetStatus(), err)
			}
			names, err := listServices(ctx, conn)
			if err != nil || !slices.Contains(names, grpcServiceNames[s]) {
				t.Errorf("%s reflection lists %v (%v), want %s", s, names, err, grpcServiceNames[s])
			}
		}
	})

	ingestion := ingestionv1.NewIngestionServiceClient(conns["ingestion"])
	t.Run("demo loaded", func(t *testing.T) {
		if !strings.Contains(out.String(), "demo: accepted") {
			t.Fatalf("no demo load reported")
		}
		if !strings.Contains(out.String(), "rejected 0 in") {
			t.Errorf("some demo events were rejected (see output)")
		}
		li, err := ingestion.GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var total uint64
		for _, p := range li.GetPartitions() {
			total += p.GetLastOffset()
		}
		if total == 0 {
			t.Errorf("ingestion log is empty after the demo load")
		}
		acct := demoCustomer(t)
		resp, err := ingestion.ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: acct, Page: &commonv1.PageRequest{PageSize: 5}})
		if err != nil || len(resp.GetEvents()) == 0 {
			t.Errorf("ListAccountEvents(%s) = %d events, %v", acct, len(resp.GetEvents()), err)
		}
	})

	const account = "e2e-acme"
	run := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	t.Run("ingest through the CLI", func(t *testing.T) {
		var nd bytes.Buffer
		for i, name := range []string{"report_created", "dashboard_shared", "export_run"} {
			fmt.Fprintf(&nd, `{"type":"track","messageId":"%s-cli-%d","userId":"e2e-user","event":"%s","context":{"groupId":"%s"},"timestamp":"2026-10-30T10:0%d:00Z"}`+"\n", run, i, name, account, i)
		}
		file := filepath.Join(t.TempDir(), "events.ndjson")
		if err := os.WriteFile(file, nd.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := exec.Command(filepath.Join(bin, "cairn"), "ingest", file, "--data", data).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "accepted 3, duplicate 0, rejected 0") {
			t.Fatalf("cairn ingest: %v\n%s", err, b)
		}
		b, err = exec.Command(filepath.Join(bin, "cairn"), "ingest", file, "--data", data).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "accepted 0, duplicate 3, rejected 0") {
			t.Errorf("second cairn ingest of the same file: %v\n%s", err, b)
		}
	})
	wantIDs := []string{run + "-cli-0", run + "-cli-1", run + "-cli-2"}

	if slices.Contains(services, "gateway") {
		t.Run("ingest through the gateway's Segment endpoint", func(t *testing.T) {
			body := fmt.Sprintf(`{"batch":[{"type":"track","messageId":"%s-gw-0","userId":"e2e-user","event":"alert_configured","timestamp":"2026-10-30T11:00:00Z"},`+
				`{"type":"identify","messageId":"%s-gw-1","userId":"e2e-user","traits":{"role":"champion"},"timestamp":"2026-10-30T11:01:00Z"}],"context":{"groupId":"%s"}}`, run, run, account)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ri.GatewayURL+"/v1/batch", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth(ri.WriteKey, "")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /v1/batch = %s: %s", resp.Status, b)
			}
			wantIDs = append(wantIDs, run+"-gw-0", run+"-gw-1")
		})
	}

	t.Run("events are in ListAccountEvents", func(t *testing.T) {
		within(t, time.Minute, "ListAccountEvents", func() error {
			resp, err := ingestion.ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: account, Page: &commonv1.PageRequest{PageSize: 100}})
			if err != nil {
				return err
			}
			got := map[string]bool{}
			for _, ev := range resp.GetEvents() {
				got[ev.GetMessageId()] = true
			}
			for _, id := range wantIDs {
				if !got[id] {
					return fmt.Errorf("%s missing among %d events", id, len(resp.GetEvents()))
				}
			}
			return nil
		})
	})

	t.Run("CLI reads", func(t *testing.T) {
		cairn := func(args ...string) error {
			b, err := exec.Command(filepath.Join(bin, "cairn"), append(args, "--data", data)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("cairn %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			return nil
		}
		customer := demoCustomer(t)
		checks := map[string][][]string{
			"stages":  {{"funnel"}, {"journey", customer}},
			"health":  {{"health", customer}, {"signals", "--from", "health"}, {"backtest"}},
			"routing": {{"assignments"}},
		}
		for s, cmds := range checks {
			if !slices.Contains(services, s) {
				t.Logf("NOT COVERED: %s not running, skipped cairn %v", s, cmds)
				continue
			}
			for _, args := range cmds {
				within(t, time.Minute, "cairn "+strings.Join(args, " "), func() error { return cairn(append(args, "-o", "json")...) })
			}
		}
	})

	t.Run("interrupt stops the suite cleanly", func(t *testing.T) {
		// failure guard (5 children x 20s stop bound), not a speed assertion
		if err := suite.stop(150 * time.Second); err != nil {
			t.Errorf("cairn run after SIGINT: %v, want status 0", err)
		}
		if !strings.Contains(out.String(), "stopping the suite") || strings.Contains(out.String(), "killed after not stopping") {
			t.Errorf("unclean stop (see output)")
		}
	})
}

// runningSuite is one `cairn run` started by a test.
type runningSuite struct {
	data string
	out  *syncBuffer
	cmd  *exec.Cmd
	// exited is closed when the process has exited, with err its status.
	exited chan struct{}
	err    error
	info   *cli.RunInfo
}

// startSuite starts `cairn run` with args on a fresh data directory and,
// when wantReady, waits for run.json (every service SERVING, the demo
// loaded if any). The suite is stopped when the test ends.
func startSuite(t *testing.T, bin string, wantReady bool, args ...string) *runningSuite {
	t.Helper()
	s := &runningSuite{data: filepath.Join(t.TempDir(), "data"), out: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(filepath.Join(bin, "cairn"), append([]string{"run", "--bin", bin, "--data", s.data}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		if err := s.stop(time.Minute); err != nil {
			t.Logf("cairn run %s: %v", strings.Join(args, " "), err)
		}
		if t.Failed() {
			t.Logf("cairn run %s output:\n%s", strings.Join(args, " "), s.out)
		}
	})
	if !wantReady {
		return s
	}
	deadline := time.Now().Add(4 * time.Minute) // failure guard, not a speed assertion
	for {
		if _, err := os.Stat(filepath.Join(s.data, "run.json")); err == nil {
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("cairn run %s exited before the suite was up: %v", strings.Join(args, " "), s.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("cairn run %s: run.json not written: the suite did not come up", strings.Join(args, " "))
		}
	}
	info, err := cli.ReadRunInfo(s.data)
	if err != nil {
		t.Fatal(err)
	}
	s.info = info
	return s
}

// conn dials one of the suite's services with its admin key.
func (s *runningSuite) conn(t *testing.T, service string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(s.info.GRPC[service], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.Bearer(s.info.AdminKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stop interrupts the suite, kills it if it has not exited within bound
// (a failure guard), and returns its exit status.
func (s *runningSuite) stop(bound time.Duration) error {
	select {
	case <-s.exited:
		return s.err
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(bound):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("killed after not stopping within %s on SIGINT", bound)
	}
}

// listServices asks the server's reflection service for its services.
func listServices(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, nil
}

// demoCustomer returns a current customer of the demo workspace `cairn run`
// loads in this test (seed 1, 30 accounts, now e2eNow).
func demoCustomer(t *testing.T) string {
	t.Helper()
	now, _ := time.Parse("2006-01-02", e2eNow)
	ds := demo.Generate(demo.Options{Seed: 1, Accounts: 30, Now: now, Workspace: cli.DemoWorkspace})
	for _, a := range ds.Accounts {
		if a.Customer && !a.Churned {
			return a.ID
		}
	}
	t.Fatal("the demo workspace has no current customer")
	return ""
}
