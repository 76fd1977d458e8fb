package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testService = "cairn.test.v1.TestService"
	adminToken  = "cairn_admin_test"
	readToken   = "cairn_read_test"
)

func method(name string) string { return "/" + testService + "/" + name }

// testImpl is a hand-written service used to exercise the interceptors.
type testImpl struct{}

// Echo returns the time left before the call's deadline, in Go syntax.
func (testImpl) Echo(ctx context.Context, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return wrapperspb.String("none"), nil
	}
	return wrapperspb.String(time.Until(dl).String()), nil
}

func (testImpl) Panic(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	panic("boom")
}

func unaryDesc(name string, fn func(testImpl, context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(wrapperspb.StringValue)
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, r any) (any, error) {
				return fn(srv.(testImpl), ctx, r.(*wrapperspb.StringValue))
			}
			return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: method(name)}, h)
		},
	}
}

var testDesc = grpc.ServiceDesc{
	ServiceName: testService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		unaryDesc("Echo", testImpl.Echo),
		unaryDesc("Panic", testImpl.Panic),
	},
	Streams: []grpc.StreamDesc{{
		// Tail blocks like Subscribe until its context ends.
		StreamName:    "Tail",
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			if err := stream.SendMsg(wrapperspb.String("first")); err != nil {
				return err
			}
			<-stream.Context().Done()
			return stream.Context().Err()
		},
	}},
}

var testPolicy = auth.Policy{
	method("Echo"):  auth.RoleRead,
	method("Panic"): auth.RoleRead,
	method("Tail"):  auth.RoleRead,
}

var testKeys = auth.StaticKeys{
	adminToken: {KeyID: "k1", Workspace: "acme", Role: auth.RoleAdmin},
	readToken:  {KeyID: "k2", Workspace: "acme", Role: auth.RoleRead},
}

// newTestServer builds a server on loopback port 0 with the test service.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	cfg.GRPCAddr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg, testPolicy, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	s.GRPC.RegisterService(&testDesc, testImpl{})
	return s
}

// runServer runs s until the test ends and fails the test if Run errs.
func runServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func dial(t *testing.T, s *Server, token string) *grpc.ClientConn {
	t.Helper()
	cc, err := Dial(s.Addr().String(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestLifecycle starts a server with a background task and a live stream,
// watches health go SERVING, cancels, watches NOT_SERVING during the drain
// delay, then checks that the stream is cut with Unavailable and Run returns
// nil with no goroutine left (goleak in TestMain).
func TestLifecycle(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newTestServer(t, Config{MetricsAddr: "127.0.0.1:0", DrainDelay: 5 * time.Second, Clock: clk})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bgDone := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ctx context.Context) error {
			<-ctx.Done()
			close(bgDone)
			return ctx.Err() // Canceled at shutdown is not an error
		})
	}()

	cc := dial(t, s, readToken)
	watch, err := healthpb.NewHealthClient(cc).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st := recvHealth(t, watch); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first health status = %v, want SERVING", st)
	}
	if resp, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{Service: testService}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check(%s) = %v, %v", testService, resp, err)
	}

	tail, err := cc.NewStream(t.Context(), &testDesc.Streams[0], method("Tail"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.SendMsg(wrapperspb.String("")); err != nil {
		t.Fatal(err)
	}
	if err := tail.CloseSend(); err != nil {
		t.Fatal(err)
	}
	first := new(wrapperspb.StringValue)
	if err := tail.RecvMsg(first); err != nil {
		t.Fatalf("Tail first message: %v", err)
	}

	cancel()
	if st := recvHealth(t, watch); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health status after cancel = %v, want NOT_SERVING", st)
	}
	// Still draining: the stream is alive until the clock moves.
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the drain delay passed", err)
	default:
	}
	clk.Advance(5 * time.Second)

	if err := tail.RecvMsg(new(wrapperspb.StringValue)); status.Code(err) != codes.Unavailable {
		t.Fatalf("Tail after shutdown: %v, want Unavailable", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	<-bgDone
}

func recvHealth(t *testing.T, w healthpb.Health_WatchClient) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := w.Recv()
	if err != nil {
		t.Fatalf("health watch: %v", err)
	}
	return resp.GetStatus()
}

func TestInterceptors(t *testing.T) {
	var logs bytes.Buffer
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "test.db"), make([]byte, 12345), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{
		DataDir:        dataDir,
		MetricsAddr:    "127.0.0.1:0",
		RequestTimeout: 7 * time.Second,
		MaxRecvBytes:   4096,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	runServer(t, s)
	withKey := dial(t, s, readToken)
	noKey := dial(t, s, "")

	tests := []struct {
		name   string
		cc     *grpc.ClientConn
		method string
		req    string
		ctx    func() (context.Context, context.CancelFunc)
		code   codes.Code
		check  func(t *testing.T, resp string)
	}{
		{
			name: "default deadline when the client sets none", cc: withKey, method: "Echo",
			check: func(t *testing.T, resp string) {
				d, err := time.ParseDuration(resp)
				if err != nil || d <= 0 || d > 7*time.Second {
					t.Fatalf("time left = %q, want in (0, 7s]", resp)
				}
			},
		},
		{
			name: "client deadline kept", cc: withKey, method: "Echo",
			ctx: func() (context.Context, context.CancelFunc) { return context.WithTimeout(t.Context(), time.Hour) },
			check: func(t *testing.T, resp string) {
				if d, err := time.ParseDuration(resp); err != nil || d <= 7*time.Second {
					t.Fatalf("time left = %q, want the client's hour", resp)
				}
			},
		},
		{name: "panic becomes Internal", cc: withKey, method: "Panic", req: "secret-request-body", code: codes.Internal},
		{name: "oversized message", cc: withKey, method: "Echo", req: strings.Repeat("x", 8192), code: codes.ResourceExhausted},
		{name: "no key", cc: noKey, method: "Echo", code: codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			resp := new(wrapperspb.StringValue)
			err := tc.cc.Invoke(ctx, method(tc.method), wrapperspb.String(tc.req), resp)
			if code := status.Code(err); code != tc.code {
				t.Fatalf("code = %v (%v), want %v", code, err, tc.code)
			}
			if tc.check != nil {
				tc.check(t, resp.GetValue())
			}
		})
	}

	if !strings.Contains(logs.String(), "panic in gRPC handler") || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-request-body") {
		t.Fatal("the request was logged")
	}

	t.Run("reflection is public", func(t *testing.T) {
		st, err := reflectionpb.NewServerReflectionClient(noKey).ServerReflectionInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("reflection without a key: %v", err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, ","), testService) {
			t.Fatalf("reflection lists %v, want %s", names, testService)
		}
		st.CloseSend()
	})

	t.Run("metrics endpoint", func(t *testing.T) {
		resp, err := http.Get("http://" + s.MetricsAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"go_goroutines",
			"process_",
			`cairn_grpc_requests_total{code="Internal",method="/cairn.test.v1.TestService/Panic"} 1`,
			`cairn_grpc_request_duration_seconds_count{method="/cairn.test.v1.TestService/Echo"}`,
			`cairn_bbolt_file_bytes{service="test"} 12345`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}

func TestBackgroundFailureStopsServer(t *testing.T) {
	s := newTestServer(t, Config{})
	boom := errors.New("consumer broke")
	err := s.Run(context.Background(), func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want it to wrap %v", err, boom)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestCloseWithoutRun(t *testing.T) {
	s := newTestServer(t, Config{MetricsAddr: "127.0.0.1:0"})
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("Run after Close succeeded")
	}
	// The port is free again.
	s2, err := New(Config{Name: "test", GRPCAddr: addr, Logger: slog.New(slog.DiscardHandler)}, testPolicy, testKeys)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	s2.Close()
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		a    auth.Authenticator
		want string
	}{
		{name: "nil authenticator", cfg: Config{Name: "x", GRPCAddr: "127.0.0.1:0"}, want: "nil authenticator"},
		{name: "bad address", cfg: Config{Name: "x", GRPCAddr: "nope"}, a: testKeys, want: "-grpc-addr"},
		{name: "metrics address not listenable", cfg: Config{Name: "x", GRPCAddr: "127.0.0.1:0", MetricsAddr: "256.0.0.1:1"}, a: testKeys, want: "-metrics-addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg, testPolicy, tc.a)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// BenchmarkUnaryCall measures one authenticated unary call over loopback
// through the whole interceptor chain (metrics, recovery, deadline, auth).
func BenchmarkUnaryCall(b *testing.B) {
	s, err := New(Config{Name: "bench", GRPCAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}, testPolicy, testKeys)
	if err != nil {
		b.Fatal(err)
	}
	s.GRPC.RegisterService(&testDesc, testImpl{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	cc, err := Dial(s.Addr().String(), readToken)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	req, resp := wrapperspb.String(""), new(wrapperspb.StringValue)
	b.ReportAllocs()
	for b.Loop() {
		if err := cc.Invoke(ctx, method("Echo"), req, resp); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSetRuntime checks that the configured GC target and memory limit are
// applied unless the operator set GOGC or GOMEMLIMIT.
func TestSetRuntime(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	})
	tests := []struct {
		name      string
		cfg       Config
		env       map[string]string
		wantGC    int
		wantLimit int64
	}{
		{name: "configured", cfg: Config{GCPercent: 400, MemoryLimitMiB: 512}, wantGC: 400, wantLimit: 512 << 20},
		{name: "zero leaves the runtime's", cfg: Config{}, wantGC: 100, wantLimit: math.MaxInt64},
		{name: "the environment wins", cfg: Config{GCPercent: 400, MemoryLimitMiB: 512},
			env: map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}, wantGC: 100, wantLimit: math.MaxInt64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			setRuntime(tc.cfg, func(k string) string { return tc.env[k] })
			if got := debug.SetGCPercent(100); got != tc.wantGC {
				t.Errorf("GC percent = %d, want %d", got, tc.wantGC)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
