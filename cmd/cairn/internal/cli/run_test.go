package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/demo"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// helperEnv makes the test binary act as a suite service when it is run as
// bin/cairn-<service> by `cairn run` (see fakeService).
const helperEnv = "CAIRN_CLI_FAKE_SERVICE"

// fakeService is what the test binary does when started as a child: it
// accepts exactly the flags `cairn run` passes, serves gRPC health (and the
// fake ingestion and routing APIs) or the gateway's /readyz, and exits on
// SIGTERM. It exits on its own when <dir>/kill-<name> appears, so tests can
// make a child die at a chosen moment.
func fakeService(dir string) int {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "cairn-")
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	grpcAddr := fs.String("grpc-addr", "", "")
	httpAddr := fs.String("http-addr", "", "")
	fs.String("metrics-addr", "", "")
	fs.String("keys", "", "")
	fs.String("data", "", "")
	fs.String("partitions", "", "")
	for _, u := range []string{"ingestion", "stages", "health", "routing", "plays"} {
		fs.String(u+"-addr", "", "")
	}
	fs.Bool("allow-private-destinations", false, "")
	fs.String("dashboard-url", "", "")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if os.Getenv("CAIRN_SERVICE_KEY") == "" {
		fmt.Fprintln(os.Stderr, "no CAIRN_SERVICE_KEY")
		return 2
	}
	if os.Getenv(helperEnv+"_CRASH") == name {
		fmt.Fprintln(os.Stderr, "cannot open store: disk on fire")
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	killed := make(chan struct{})
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(dir, "kill-"+name)); err == nil {
				close(killed)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var stop func()
	if name == "gateway" {
		lis, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
			}
		})}
		go func() { _ = srv.Serve(lis) }()
		stop = func() { _ = srv.Close() }
	} else {
		lis, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		s := grpc.NewServer()
		hs := health.NewServer()
		healthpb.RegisterHealthServer(s, hs)
		f := &fakes{seen: map[string]bool{}}
		switch name {
		case "ingestion":
			ingestionv1.RegisterIngestionServiceServer(s, fakeIngestion{fakes: f})
		case "routing":
			routingv1.RegisterRoutingServiceServer(s, fakeRouting{fakes: f})
		}
		go func() { _ = s.Serve(lis) }()
		stop = s.GracefulStop
	}
	fmt.Println("serving")
	select {
	case <-sig:
		stop()
		fmt.Println("stopped on SIGTERM")
		return 0
	case <-killed:
		fmt.Fprintln(os.Stderr, "killed by test")
		return 3
	}
}

// fakeBin links the test binary as every service.
func fakeBin(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, s := range suiteServices {
		if err := os.Symlink(exe, filepath.Join(bin, "cairn-"+s)); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// lockedBuf is an output buffer safe for the supervisor's goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startRun runs `cairn run` in the background against fake services.
func startRun(t *testing.T, ctx context.Context, data string, extra ...string) (*lockedBuf, <-chan int) {
	t.Helper()
	return startRunClock(t, ctx, data, nil, extra...)
}

// startRunClock is startRun with the clock that paces restarts.
func startRunClock(t *testing.T, ctx context.Context, data string, clk clock.Clock, extra ...string) (*lockedBuf, <-chan int) {
	t.Helper()
	t.Setenv(helperEnv, data)
	out := &lockedBuf{}
	env := &Env{Stdout: out, Stderr: out, Getenv: os.Getenv, Clock: clk}
	args := append([]string{"run", "--bin", fakeBin(t), "--data", data, "--base-port", fmt.Sprint(testport.Base(t, 25)),
		"--demo-accounts", "3", "--now", "2026-11-01", "--stop-timeout", "1m"}, extra...)
	code := make(chan int, 1)
	go func() { code <- Main(ctx, args, env) }()
	return out, code
}

// waitOutput waits until the output holds want n times.
func waitOutput(t *testing.T, want string, n int, code <-chan int, out *lockedBuf) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // failure guard, not a speed assertion
	for strings.Count(out.String(), want) < n {
		select {
		case c := <-code:
			t.Fatalf("cairn run exited %d before printing %q %d times:\n%s", c, want, n, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("output lacks %q %d times:\n%s", want, n, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFile(t *testing.T, path string, code <-chan int, out *lockedBuf) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // failure guard, not a speed assertion
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case c := <-code:
			t.Fatalf("cairn run exited %d before writing %s:\n%s", c, path, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written:\n%s", path, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunSuiteLifecycle(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, code := startRun(t, ctx, data)
	waitFile(t, filepath.Join(data, "run.json"), code, out)
	ri, err := ReadRunInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := auth.LoadKeyring(filepath.Join(data, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]auth.Principal{
		ri.ReadKey: {Workspace: DemoWorkspace, Role: auth.RoleRead}, ri.WriteKey: {Workspace: DemoWorkspace, Role: auth.RoleWrite},
		ri.AdminKey: {Workspace: DemoWorkspace, Role: auth.RoleAdmin}, ri.ServiceKey: {Role: auth.RoleService},
	} {
		p, err := kr.Authenticate(tok)
		if err != nil || p.Workspace != want.Workspace || p.Role != want.Role {
			t.Errorf("run.json key for %v authenticates as %+v, %v", want, p, err)
		}
	}
	if len(ri.GRPC) != 5 || !strings.HasPrefix(ri.GatewayURL, "http://127.0.0.1:") || !strings.Contains(ri.DashboardURL, "#key="+ri.ReadKey) {
		t.Errorf("run.json = %+v", ri)
	}
	if fi, err := os.Stat(filepath.Join(data, "run.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("run.json mode %v, %v; it holds keys and must be 0600", fi.Mode().Perm(), err)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d after interrupt, want 0:\n%s", c, out)
	}
	got := out.String()
	for _, w := range []string{
		"ingestion | serving", "gateway   | serving", "all services are ready",
		"demo: routing: 9 owners and 5 pools upserted",
		"demo: accepted", "rejected 0",
		"Cairn is running.", "Dashboard:  http://127.0.0.1:", "stopping the suite",
		"routing   | stopped on SIGTERM", "ingestion | stopped on SIGTERM",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}

	// A second start reuses the keys (run.json is the only copy of the
	// tokens) and, with --no-demo, loads nothing.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	os.Remove(filepath.Join(data, "run.json"))
	if err := writeRunInfo(data, ri); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(data, "keys.json"))
	out2, code2 := startRun(t, ctx2, data, "--no-demo")
	for !strings.Contains(out2.String(), "Cairn is running.") {
		select {
		case c := <-code2:
			t.Fatalf("second run exited %d:\n%s", c, out2)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel2()
	if c := <-code2; c != 0 {
		t.Fatalf("second run exit %d:\n%s", c, out2)
	}
	after, _ := os.ReadFile(filepath.Join(data, "keys.json"))
	if string(before) != string(after) {
		t.Error("second run created new keys although run.json's keys were valid")
	}
	if strings.Contains(out2.String(), "demo: accepted") {
		t.Error("--no-demo loaded the demo")
	}
}

func TestRunSuiteChildFailsAtStart(t *testing.T) {
	data := t.TempDir()
	t.Setenv(helperEnv+"_CRASH", "health")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, code := startRun(t, ctx, data, "--no-demo")
	if c := <-code; c != 1 {
		t.Fatalf("exit %d, want 1:\n%s", c, out)
	}
	if want := "health exited before it was ready"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out.String(), "ingestion | stopped on SIGTERM") {
		t.Errorf("the other children were not stopped:\n%s", out)
	}
}

// TestRunSuiteRestartsChild: a child that dies after the suite is up is
// started again after a backoff that doubles, and the supervisor says so;
// the suite keeps running until it is interrupted.
func TestRunSuiteRestartsChild(t *testing.T) {
	data := t.TempDir()
	clk := clock.NewManual(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, code := startRunClock(t, ctx, data, clk, "--no-demo")
	waitFile(t, filepath.Join(data, "run.json"), code, out)
	kill := filepath.Join(data, "kill-routing")
	for i, msg := range []string{
		"routing exited (exit status 3); restarting in 500ms (restart 1)",
		"routing exited (exit status 3); restarting in 1s (restart 2)",
	} {
		if err := os.WriteFile(kill, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		waitOutput(t, msg, 1, code, out)
		// The fake dies at once while the file exists.
		if err := os.Remove(kill); err != nil {
			t.Fatal(err)
		}
		if strings.Count(out.String(), "routing   | serving") != i+1 {
			t.Fatalf("routing restarted before its backoff was over:\n%s", out)
		}
		clk.Advance(time.Duration(500<<i) * time.Millisecond)
		waitOutput(t, "routing   | serving", i+2, code, out)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d after interrupt, want 0:\n%s", c, out)
	}
	for _, want := range []string{"routing   | stopped on SIGTERM", "ingestion | stopped on SIGTERM"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "stopping the others") {
		t.Errorf("a restarted child stopped the suite:\n%s", out)
	}
}

// TestRunSuiteGivesUpOnCrashLoop: a child that keeps dying is restarted up
// to the limit, then the supervisor says why and stops the suite.
func TestRunSuiteGivesUpOnCrashLoop(t *testing.T) {
	data := t.TempDir()
	clk := clock.NewManual(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, code := startRunClock(t, ctx, data, clk, "--no-demo")
	waitFile(t, filepath.Join(data, "run.json"), code, out)
	if err := os.WriteFile(filepath.Join(data, "kill-health"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	delay := 500 * time.Millisecond
	for n := 1; n <= defaultRestartPolicy.limit; n++ {
		waitOutput(t, fmt.Sprintf("health exited (exit status 3); restarting in %s (restart %d)", delay, n), 1, code, out)
		clk.Advance(delay)
		delay *= 2
	}
	if c := <-code; c != 1 {
		t.Fatalf("exit %d, want 1:\n%s", c, out)
	}
	for _, want := range []string{
		"health exited (exit status 3) after 5 restarts within 1m0s; stopping the suite",
		"routing   | stopped on SIGTERM", "ingestion | stopped on SIGTERM",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestProcessForBasePort: with another base port, every upstream address a
// process is given comes from that base, so a suite never reads another
// suite's services on the default ports.
func TestProcessForBasePort(t *testing.T) {
	rc := &runConfig{bin: "/b", basePort: 23000, metricsBase: 25000, httpAddr: "127.0.0.1:28080", partitions: 8}
	p := rc.ports()
	for _, name := range suiteServices {
		proc := processFor(name, rc, p, "/d", "/d/keys.json", "sk")
		all := strings.Join(append(append([]string{}, proc.Args...), proc.Env...), " ")
		for _, def := range []string{":7101", ":7102", ":7103", ":7104", ":7105", ":9101", ":9102", ":9103", ":9104", ":9105", ":9106", ":8080"} {
			if strings.Contains(all, def) {
				t.Errorf("%s is given a default address %s: %s", name, def, all)
			}
		}
	}
	health := processFor("health", rc, p, "/d", "/d/keys.json", "sk")
	if got := strings.Join(health.Env, " "); !strings.Contains(got, "CAIRN_STAGES_ADDR=127.0.0.1:23002") {
		t.Errorf("health is not given the suite's stages: %s", got)
	}
}

func TestProcessFor(t *testing.T) {
	rc := &runConfig{bin: "/b", basePort: 7100, metricsBase: 9100, httpAddr: "127.0.0.1:8080", partitions: 8}
	p := rc.ports()
	tests := []struct {
		name     string
		service  string
		wantArgs string
		wantEnv  string
		ready    string
	}{
		{name: "ingestion", service: "ingestion", wantArgs: "-metrics-addr 127.0.0.1:9101 -keys /d/keys.json -grpc-addr 127.0.0.1:7101 -data /d -partitions 8", wantEnv: "CAIRN_SERVICE_KEY=sk", ready: "127.0.0.1:7101"},
		{name: "health reads ingestion and stages", service: "health", wantArgs: "-metrics-addr 127.0.0.1:9103 -keys /d/keys.json -grpc-addr 127.0.0.1:7103 -data /d -partitions 8", wantEnv: "CAIRN_SERVICE_KEY=sk CAIRN_INGESTION_ADDR=127.0.0.1:7101 CAIRN_STAGES_ADDR=127.0.0.1:7102", ready: "127.0.0.1:7103"},
		{name: "routing reads three upstreams", service: "routing", wantArgs: "-metrics-addr 127.0.0.1:9104 -keys /d/keys.json -grpc-addr 127.0.0.1:7104 -data /d -partitions 8", wantEnv: "CAIRN_SERVICE_KEY=sk CAIRN_INGESTION_ADDR=127.0.0.1:7101 CAIRN_STAGES_ADDR=127.0.0.1:7102 CAIRN_HEALTH_ADDR=127.0.0.1:7103", ready: "127.0.0.1:7104"},
		{name: "gateway", service: "gateway", wantArgs: "-metrics-addr 127.0.0.1:9105 -keys /d/keys.json -http-addr 127.0.0.1:8080 -ingestion-addr 127.0.0.1:7101 -stages-addr 127.0.0.1:7102 -health-addr 127.0.0.1:7103 -routing-addr 127.0.0.1:7104 -plays-addr 127.0.0.1:7105", ready: "http://127.0.0.1:8080/readyz"},
		{name: "plays reads the derived logs", service: "plays", wantArgs: "-metrics-addr 127.0.0.1:9106 -keys /d/keys.json -allow-private-destinations -dashboard-url http://127.0.0.1:8080 -grpc-addr 127.0.0.1:7105 -data /d -partitions 8", wantEnv: "CAIRN_SERVICE_KEY=sk CAIRN_STAGES_ADDR=127.0.0.1:7102 CAIRN_HEALTH_ADDR=127.0.0.1:7103 CAIRN_ROUTING_ADDR=127.0.0.1:7104", ready: "127.0.0.1:7105"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := processFor(tt.service, rc, p, "/d", "/d/keys.json", "sk")
			if got := strings.Join(proc.Env, " "); got != tt.wantEnv && tt.service != "gateway" {
				t.Errorf("env %s, want exactly %s (every upstream from the suite's own ports)", got, tt.wantEnv)
			}
			if got := strings.Join(proc.Args, " "); got != tt.wantArgs {
				t.Errorf("args\n got %s\nwant %s", got, tt.wantArgs)
			}
			if got := strings.Join(proc.Env, " "); !strings.HasPrefix(got, tt.wantEnv) {
				t.Errorf("env %s, want prefix %s", got, tt.wantEnv)
			}
			if proc.GRPCAddr+proc.ReadyURL != tt.ready || proc.Path != "/b/cairn-"+tt.service {
				t.Errorf("ready %q%q path %q", proc.GRPCAddr, proc.ReadyURL, proc.Path)
			}
		})
	}
}

// BenchmarkDemoItems measures turning the 300-account demo into events
// through pkg/domain/segment, the CPU cost `cairn run` pays before loading.
func BenchmarkDemoItems(b *testing.B) {
	ds := demo.Generate(demo.Options{Seed: 1, Accounts: 300, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	b.ResetTimer()
	for b.Loop() {
		if _, err := demoItems(ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ds.Events)), "events/op")
}
