package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
)

// TestReadiness: while a check fails the server serves but reports
// NOT_SERVING with the reason on /readyz; when it passes, SERVING.
func TestReadiness(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	s := newTestServer(t, Config{MetricsAddr: "127.0.0.1:0", Clock: clk})
	var down atomic.Bool
	down.Store(true)
	s.Ready("ingestion", func() error {
		if down.Load() {
			return errors.New("1 of 8 partitions unreachable: connection refused")
		}
		return nil
	})
	runServer(t, s)
	cc := dial(t, s, readToken)
	watch, err := healthpb.NewHealthClient(cc).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st := recvHealth(t, watch); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health with a failing check = %v, want NOT_SERVING", st)
	}
	readyz := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.MetricsAddr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: ingestion: 1 of 8 partitions unreachable: connection refused") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	down.Store(false)
	for clk.Waiters() == 0 { // the watcher waits for its next round
		runtime.Gosched()
	}
	clk.Advance(ReadyInterval)
	if st := recvHealth(t, watch); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health once the check passes = %v, want SERVING", st)
	}
	if code, body := readyz(); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
}

// TestReadyzSaysStorageTrouble: a store whose writes fail leaves the
// service ready (its reads are true) and /readyz says what is wrong.
func TestReadyzSaysStorageTrouble(t *testing.T) {
	s := newTestServer(t, Config{MetricsAddr: "127.0.0.1:0"})
	var trouble atomic.Value
	trouble.Store("disk full since 17:55:02 UTC: writes fail, reads still work")
	s.Storage(func() string { return trouble.Load().(string) })
	runServer(t, s)
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.MetricsAddr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "ready; storage: disk full since 17:55:02 UTC: writes fail, reads still work\n" {
		t.Errorf("/readyz on a full disk = %d %q", code, body)
	}
	trouble.Store("")
	if code, body := get(); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz once writes succeed = %d %q", code, body)
	}
}

// TestStorageInStatus: every GetStatus answer carries the store's write
// trouble (other answers are left alone), and replicas' troubles merge.
func TestStorageInStatus(t *testing.T) {
	s := newTestServer(t, Config{})
	const full = "disk full since 17:55:02 UTC: writes fail, reads still work"
	s.Storage(func() string { return full })
	get := &grpc.UnaryServerInfo{FullMethod: "/cairn.stages.v1.StagesService/GetStatus"}
	resp, err := s.storageStatus(context.Background(), nil, get, func(context.Context, any) (any, error) {
		return &stagesv1.GetStatusResponse{Backlog: &commonv1.Backlog{CaughtUp: true}}, nil
	})
	if err != nil || resp.(*stagesv1.GetStatusResponse).GetBacklog().GetStorage() != full {
		t.Errorf("GetStatus = %v, %v; want the storage trouble", resp, err)
	}
	other := &grpc.UnaryServerInfo{FullMethod: "/cairn.stages.v1.StagesService/GetFunnel"}
	if _, err := s.storageStatus(context.Background(), nil, other, func(context.Context, any) (any, error) { return &stagesv1.GetFunnelResponse{}, nil }); err != nil {
		t.Errorf("another method: %v", err)
	}
	dst := &commonv1.Backlog{CaughtUp: true}
	MergeBacklog(dst, &commonv1.Backlog{CaughtUp: true})
	MergeBacklog(dst, &commonv1.Backlog{CaughtUp: true, Storage: full})
	MergeBacklog(dst, &commonv1.Backlog{CaughtUp: true, Storage: full})
	if dst.GetStorage() != full {
		t.Errorf("merged storage %q, want %q once", dst.GetStorage(), full)
	}
}
