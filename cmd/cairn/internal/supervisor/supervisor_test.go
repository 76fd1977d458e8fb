package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// The test binary doubles as the supervised child: with CAIRN_SUPERVISOR_HELPER
// set, TestMain runs the helper instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CAIRN_SUPERVISOR_HELPER"); mode != "" {
		os.Exit(helper(mode, os.Getenv("CAIRN_HELPER_SOCKET")))
	}
	goleak.VerifyTestMain(m)
}

// helper is a tiny service: "serve" answers gRPC health on a unix socket and
// stops on SIGTERM; "crash" fails at once; "stubborn" ignores SIGTERM.
func helper(mode, socket string) int {
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "boom: cannot open store")
		return 3
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready and ignoring SIGTERM")
		select {}
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		s.GracefulStop()
	}()
	fmt.Print("serving\npartial line without newline")
	if err := s.Serve(lis); err != nil {
		return 1
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for the children's writers.
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

func proc(t *testing.T, name, mode string) Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to ~108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "sup")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	p := Process{Name: name, Path: exe, Env: []string{"CAIRN_SUPERVISOR_HELPER=" + mode, "CAIRN_HELPER_SOCKET=" + sock}}
	if mode == "serve" {
		p.GRPCAddr = "unix://" + sock
	}
	return p
}

func TestGroupStartReadyStop(t *testing.T) {
	var out syncBuffer
	g := NewGroup(&out, clock.Real{})
	for _, name := range []string{"alpha", "beta"} {
		if err := g.Start(proc(t, name, "serve")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.WaitReady(ctx, 20*time.Millisecond); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if err := g.Stop(time.Minute); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	got := out.String()
	for _, want := range []string{"alpha     | serving\n", "beta      | serving\n", "alpha     | partial line without newline\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	var order []string
	for range 2 {
		e := <-g.Exits()
		if e.Err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0", e.Name, e.Err)
		}
		order = append(order, e.Name)
	}
	if strings.Join(order, ",") != "beta,alpha" {
		t.Errorf("stop order %v, want the reverse of the start order", order)
	}
}

func TestGroupChildCrashes(t *testing.T) {
	var out syncBuffer
	g := NewGroup(&out, clock.Real{})
	p := proc(t, "gamma", "crash")
	p.GRPCAddr = "unix:///nonexistent/socket"
	if err := g.Start(p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := g.WaitReady(ctx, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "gamma exited before it was ready") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("WaitReady = %v, want it to name the crashed child and its status", err)
	}
	e := <-g.Exits()
	if e.Name != "gamma" || e.Err == nil {
		t.Errorf("exit = %+v, want gamma with an error", e)
	}
	if !strings.Contains(out.String(), "gamma     | boom: cannot open store") {
		t.Errorf("crash message not relayed with prefix:\n%s", out.String())
	}
	if err := g.Stop(time.Minute); err == nil || !strings.Contains(err.Error(), "gamma: exit status 3") {
		t.Errorf("Stop = %v, want it to report gamma's failure", err)
	}
}

func TestGroupStopKillsStubbornChild(t *testing.T) {
	var out syncBuffer
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := NewGroup(&out, clk)
	if err := g.Start(proc(t, "delta", "stubborn")); err != nil {
		t.Fatal(err)
	}
	// Wait until the child has installed its SIGTERM handler.
	for !strings.Contains(out.String(), "ignoring SIGTERM") {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- g.Stop(10 * time.Second) }()
	for clk.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	clk.Advance(10 * time.Second)
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "delta: killed after not stopping within 10s") {
		t.Fatalf("Stop = %v, want delta reported as killed", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	g := NewGroup(&syncBuffer{}, clock.Real{})
	err := g.Start(Process{Name: "epsilon", Path: filepath.Join(t.TempDir(), "cairn-epsilon")})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Start = %v, want a hint to build", err)
	}
}

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "whole lines", writes: []string{"a\nb\n"}, want: "x | a\nx | b\n"},
		{name: "split line", writes: []string{"hel", "lo\nwor", "ld\n"}, want: "x | hello\nx | world\n"},
		{name: "partial line flushed", writes: []string{"tail"}, want: "x | tail\n"},
		{name: "empty", writes: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &prefixWriter{prefix: []byte("x | "), out: &buf}
			for _, w := range tt.writes {
				if n, err := p.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			p.flush()
			if buf.String() != tt.want {
				t.Errorf("got %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

// TestWaitReadyNamesTheReason: a child that is up but not SERVING is
// reported with what its /readyz says, so `cairn run` names the upstream it
// waits for.
func TestWaitReadyNamesTheReason(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	why := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: upstream: ingestion: 8 of 8 partitions unreachable: connection refused")
	}))
	defer why.Close()
	c := &child{p: Process{Name: "stages", GRPCAddr: lis.Addr().String(), ReasonURL: why.URL + "/readyz"}, done: make(chan struct{})}
	clk := clock.NewManual(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.waitReady(ctx, clk, time.Second) }()
	for clk.Waiters() == 0 { // one check done; waiting for the next
		runtime.Gosched()
	}
	cancel()
	err = <-errc
	if err == nil || !strings.Contains(err.Error(), "stages not ready") || !strings.Contains(err.Error(), "status NOT_SERVING: not ready: upstream: ingestion: 8 of 8 partitions unreachable: connection refused") {
		t.Fatalf("waitReady = %v", err)
	}
}
