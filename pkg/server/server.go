// Package server bootstraps a Cairn gRPC service: configuration from flags
// and environment, a grpc.Server with tracing, recovery, auth, default
// deadlines, size limits, keepalive enforcement and a codec that answers
// requests that do not decode with InvalidArgument, gRPC health and
// reflection, a Prometheus /metrics listener, and a Run loop that drives the
// server and the service's background work (consumers, timers) in one
// errgroup and shuts everything down gracefully when its context ends.
//
// Typical main:
//
//	cfg := server.Config{Name: "stages"}
//	cfg.RegisterFlags(flag.CommandLine)
//	flag.Parse()
//	keys, err := auth.LoadKeyring(cfg.KeysPath())
//	srv, err := server.New(cfg, policy, keys)
//	stagesv1.RegisterStagesServiceServer(srv.GRPC, impl)
//	return srv.Run(ctx, consumer.Run)
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
)

// Server is a configured gRPC server that is already listening. Register
// service implementations on GRPC, then call Run.
type Server struct {
	// GRPC is the server to register service implementations on.
	GRPC *grpc.Server
	// Health is the gRPC health service; Run reports SERVING and, on
	// shutdown, NOT_SERVING for every registered service and for "".
	Health *health.Server
	// Registry is exposed on /metrics; it already has the Go and process
	// collectors, the cairn_grpc_* request metrics and
	// cairn_bbolt_file_bytes{service} for Config.DBPath.
	Registry *prometheus.Registry
	// Logger is Config.Logger.
	Logger *slog.Logger

	cfg        Config
	lis        net.Listener
	metricsLis net.Listener
	// stopping is cancelled when shutdown begins; streaming calls are
	// cut then, so that long-lived Subscribe streams do not hold up
	// GracefulStop.
	stopping context.Context
	stop     context.CancelFunc
	started  atomic.Bool
	metrics  *rpcMetrics
	audit    *audit
	checks   []readyCheck
	// storage says what is wrong with writing the store (Storage).
	storage func() string
	// subscribers admits Subscribe streams (nil: no bound).
	subscribers *admit.Controller
}

// New validates cfg, opens the gRPC (and metrics) listeners and builds the
// server. Every method not listed in policy is denied (see auth.Policy).
func New(cfg Config, policy auth.Policy, a auth.Authenticator) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s config: %w", cfg.Name, err)
	}
	if a == nil {
		return nil, fmt.Errorf("new %s server: nil authenticator", cfg.Name)
	}
	setRuntime(cfg, os.Getenv)

	reg := prometheus.NewRegistry()
	m := newRPCMetrics()
	au := newAudit()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency, au.calls,
		newFileSizeCollector(cfg.Name, cfg.DBPath()),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on -grpc-addr %s: %w", cfg.GRPCAddr, err)
	}
	var mlis net.Listener
	if cfg.MetricsAddr != "" {
		mlis, err = net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			lis.Close()
			return nil, fmt.Errorf("listen on -metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
	}

	stopping, stop := context.WithCancel(context.Background())
	s := &Server{
		Registry:   reg,
		Logger:     cfg.Logger,
		cfg:        cfg,
		lis:        lis,
		metricsLis: mlis,
		stopping:   stopping,
		stop:       stop,
		metrics:    m,
		audit:      au,
	}
	if !cfg.OwnSubscribeAdmission && (cfg.MaxSubscribers > 0 || cfg.MaxSubscribersPerKey > 0) {
		s.subscribers = admit.New("subscribe", admit.Limits{Requests: cfg.MaxSubscribers, KeyRequests: cfg.MaxSubscribersPerKey}, cfg.Clock)
		if err := reg.Register(s.subscribers); err != nil {
			lis.Close()
			if mlis != nil {
				mlis.Close()
			}
			stop()
			return nil, fmt.Errorf("register subscribe admission metrics: %w", err)
		}
	}
	// A request that does not decode is InvalidArgument (see codec).
	c := newCodec()
	s.GRPC = grpc.NewServer(append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(c),
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))),
		grpc.ChainUnaryInterceptor(
			m.unary,
			c.unary,
			s.recoverUnary,
			s.deadline,
			auth.UnaryServerInterceptor(a, policy),
			s.auditUnary,
			s.storageStatus,
			s.ownedWorkspace,
			apierr.UnaryServerInterceptor(cfg.Logger),
		),
		grpc.ChainStreamInterceptor(
			m.stream,
			c.stream,
			s.recoverStream,
			s.cutOnShutdown,
			auth.StreamServerInterceptor(a, policy),
			s.auditStream,
			s.admitSubscribe,
			s.ownedPartitions,
			apierr.StreamServerInterceptor(cfg.Logger),
		),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		// Clients (pkg/server.Dial) ping every 30 s; allow that, and find
		// dead Subscribe peers within about a minute and a half.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
	}, cfg.ServerOptions...)...)
	s.Health = health.NewServer()
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	reflection.Register(s.GRPC)
	return s, nil
}

// Addr is the address the gRPC server listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// MetricsAddr is the address of the /metrics listener, or nil when disabled.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLis == nil {
		return nil
	}
	return s.metricsLis.Addr()
}

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Close releases the listeners of a server whose Run was never called.
func (s *Server) Close() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("close server: Run was called; cancel its context instead")
	}
	s.stop()
	s.GRPC.Stop() // no Serve yet: closes nothing but marks the server stopped
	err := s.lis.Close()
	if s.metricsLis != nil {
		err = errors.Join(err, s.metricsLis.Close())
	}
	return err
}

// Run serves gRPC and /metrics and runs the background funcs, each in its
// own goroutine of one errgroup, until ctx ends or one of them fails. Then it
// reports NOT_SERVING, waits DrainDelay, cuts streaming calls, stops
// gracefully within ShutdownTimeout (then forcibly), and returns the first
// error, or nil after a clean shutdown. Background funcs must return when
// their context ends; returning context.Canceled then is not an error.
func (s *Server) Run(ctx context.Context, background ...func(ctx context.Context) error) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("run server: already started or closed")
	}
	g, gctx := errgroup.WithContext(ctx)

	if len(s.checks) == 0 {
		s.setServing(healthpb.HealthCheckResponse_SERVING)
	} else {
		g.Go(func() error { return s.watchReady(gctx) })
	}
	s.Logger.Info("serving", "grpc_addr", s.Addr().String(), "metrics_addr", addrString(s.MetricsAddr()))

	g.Go(func() error {
		if err := s.GRPC.Serve(s.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve gRPC: %w", err)
		}
		return nil
	})

	var httpSrv *http.Server
	if s.metricsLis != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry}))
		mux.HandleFunc("GET /readyz", s.readyz)
		if s.cfg.Pprof {
			MountPprof(mux)
		}
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := httpSrv.Serve(s.metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
	}

	for i, fn := range background {
		g.Go(func() error {
			err := fn(gctx)
			if err != nil && !(errors.Is(err, context.Canceled) && gctx.Err() != nil) {
				return fmt.Errorf("background task %d: %w", i, err)
			}
			return nil
		})
	}

	g.Go(func() error {
		<-gctx.Done()
		s.shutdown(httpSrv)
		return nil
	})
	return g.Wait()
}

// shutdown drains and stops the servers.
func (s *Server) shutdown(httpSrv *http.Server) {
	clk := s.cfg.Clock
	drained := clk.After(s.cfg.DrainDelay)
	s.Health.Shutdown() // NOT_SERVING everywhere; sticky
	s.Logger.Info("shutting down", "drain_delay", s.cfg.DrainDelay)
	<-drained
	s.stop() // ends streaming calls (Subscribe, health Watch)

	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-clk.After(s.cfg.ShutdownTimeout):
		s.Logger.Warn("graceful stop timed out; closing connections", "timeout", s.cfg.ShutdownTimeout)
		s.GRPC.Stop()
		<-done
	}
	if httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := httpSrv.Shutdown(ctx); err != nil {
			httpSrv.Close()
		}
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// recoverUnary turns a handler panic into codes.Internal. It logs the panic
// and stack but never the request, which may hold personal data.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logPanic(ctx, info.FullMethod, r)
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}

// recoverStream is recoverUnary for streaming calls.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logPanic(ss.Context(), info.FullMethod, r)
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, ss)
}

func (s *Server) logPanic(ctx context.Context, method string, r any) {
	s.Logger.ErrorContext(ctx, "panic in gRPC handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

// deadline gives unary calls without a client deadline RequestTimeout.
func (s *Server) deadline(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
	}
	return handler(ctx, req)
}

// cutOnShutdown cancels a streaming call's context when shutdown begins and
// then reports Unavailable, so clients (consumers) reconnect and retry
// rather than treating the stream as finished.
func (s *Server) cutOnShutdown(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stopCut := context.AfterFunc(s.stopping, cancel)
	err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	if !stopCut() {
		// The cut ran: whatever the handler returned, tell the client why.
		return status.Error(codes.Unavailable, "server is shutting down; reconnect")
	}
	return err
}

// ctxStream replaces a ServerStream's context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// setRuntime applies the configured GC target and memory limit, unless the
// operator set the runtime's own variables (GOGC, GOMEMLIMIT), which the
// runtime has applied already.
func setRuntime(cfg Config, getenv func(string) string) {
	if cfg.GCPercent > 0 && getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimitMiB > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimitMiB << 20)
	}
}

// admitSubscribe bounds the Subscribe streams served at once, overall and
// per API key: past a bound a new stream is refused at once with
// ResourceExhausted and a retry delay (the consumers reconnect with
// backoff), so a reader that opens streams without end cannot take the
// process's memory and goroutines.
func (s *Server) admitSubscribe(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if s.subscribers == nil || !strings.HasSuffix(info.FullMethod, "/Subscribe") {
		return handler(srv, ss)
	}
	t, err := s.subscribers.Acquire(ss.Context(), admit.KeyOf(ss.Context()), 0)
	if err != nil {
		return err
	}
	defer t.Release()
	return handler(srv, ss)
}

// storageStatus fills the storage trouble (Storage) into every GetStatus
// answer's backlog, so that a status reader hears "disk full" in words
// from each service without each service wiring it.
func (s *Server) storageStatus(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil || !strings.HasSuffix(info.FullMethod, "/GetStatus") {
		return resp, err
	}
	if r, ok := resp.(interface{ GetBacklog() *commonv1.Backlog }); ok {
		if b := r.GetBacklog(); b != nil {
			b.Storage = s.storageTrouble()
		}
	}
	return resp, nil
}
