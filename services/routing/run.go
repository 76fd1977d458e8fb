package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
	rstore "github.com/cairn-dev/cairn/services/routing/internal/store"
)

// config is the process configuration.
type config struct {
	// Server holds the flags shared by every service.
	Server server.Config
	// IngestionAddr, StagesAddr and HealthAddr are the upstream logs.
	IngestionAddr, StagesAddr, HealthAddr string
	// TimerBatch is how many SLA timers fire per transaction.
	TimerBatch int
	// KillAfterTimers is test-only fault injection (CAIRN_TEST_KILL_AFTER_TIMERS).
	KillAfterTimers int
	// FakeNow freezes the clock (CAIRN_FAKE_NOW, test-only) when not zero.
	FakeNow time.Time
}

// fixedClock is the test-only frozen clock: Now never moves, so After only
// fires for non-positive durations and the timer loop relies on wake-ups.
type fixedClock struct{ now time.Time }

// Now returns the frozen instant.
func (c fixedClock) Now() time.Time { return c.now }

// After fires at once for d <= 0 and never otherwise.
func (c fixedClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	}
	return ch
}

func run(ctx context.Context, cfg config) error {
	if err := cfg.Server.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	shutdown, logger, err := telemetry.Setup(ctx, "routing")
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()
	var clk clock.Clock = clock.Real{}
	if !cfg.FakeNow.IsZero() {
		clk = fixedClock{now: cfg.FakeNow}
		logger.Warn("clock frozen by "+fakeNowEnv+" (test only)", "now", cfg.FakeNow)
	}

	db, err := store.Open(cfg.Server.DBPath(), store.Options{SchemaVersion: rstore.SchemaVersion, LockTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open routing store: %w", err)
	}
	defer func() { _ = db.Close() }()
	log, err := stream.OpenLog(db, "routing", stream.LogOptions{Partitions: cfg.Server.Partitions, Clock: clk})
	if err != nil {
		return fmt.Errorf("open routing log: %w", err)
	}
	keys, err := auth.LoadKeyring(cfg.Server.KeysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	svc, err := rserver.New(rserver.Options{DB: db, Log: log, Partitions: cfg.Server.Partitions, Clock: clk, Logger: logger, Registerer: reg, TimerBatch: cfg.TimerBatch})
	if err != nil {
		return err
	}
	if n := cfg.KillAfterTimers; n > 0 {
		logger.Warn(killAfterEnv+" set: the process kills itself (test only)", "after", n)
		svc.AfterFire = func(total int) {
			if total >= n {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}

	policy := rserver.Policy()
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.Server.MaxRecvBytes),
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(deadline(cfg.Server.RequestTimeout), auth.UnaryServerInterceptor(keys, policy)),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, policy)),
	)
	routingv1.RegisterRoutingServiceServer(gs, rserver.NewServer(svc, rserver.LogSubscriber(log)))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	parts := make([]uint32, cfg.Server.Partitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	runs, conns, err := consumers(cfg, svc, upstream{db: db, parts: parts, clk: clk, logger: logger, reg: reg})
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Server.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.GRPCAddr, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gs.Serve(lis) })
	g.Go(func() error { return svc.RunTimers(ctx) })
	if cfg.Server.MetricsAddr != "" {
		ms := &http.Server{Addr: cfg.Server.MetricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := ms.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics listener: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			return ms.Close()
		})
	}
	for _, c := range runs {
		g.Go(func() error { return c(ctx) })
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(routingv1.RoutingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	logger.Info("routing serving", "grpc", lis.Addr().String(), "metrics", cfg.Server.MetricsAddr, "partitions", cfg.Server.Partitions)
	g.Go(func() error {
		<-ctx.Done()
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(cfg.Server.ShutdownTimeout):
			gs.Stop()
		}
		return nil
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// deadline gives unary calls without a client deadline a bounded one.
func deadline(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); !ok && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return h(ctx, req)
	}
}
