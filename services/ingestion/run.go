package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// retentionInterval is how often expired log records are removed.
const retentionInterval = time.Minute

// run serves until ctx ends: validate config, open the store, register,
// report SERVING; on ctx end report NOT_SERVING and stop gracefully.
func run(ctx context.Context, cfg config) (err error) {
	shutdown, logger, err := telemetry.Setup(ctx, "ingestion")
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() { err = errors.Join(err, shutdown(context.Background())) }()

	keys, err := auth.LoadKeyring(cfg.keysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	db, err := pkgstore.Open(cfg.dbPath(), pkgstore.Options{SchemaVersion: store.SchemaVersion})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	st, err := store.Open(db, store.Options{
		Partitions:    uint32(cfg.Partitions),
		Retention:     cfg.Retention,
		DedupWindow:   cfg.DedupWindow,
		Clock:         clock.Real{},
		NoGroupCommit: cfg.NoGroupCommit,
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := server.New(st, server.Config{
		Limits:           cfg.Limits,
		MaxInflightBytes: cfg.MaxInflightBytes,
		Registerer:       reg,
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	policy := server.Policy()
	gs := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.ChainUnaryInterceptor(recoverUnary(logger), auth.UnaryServerInterceptor(keys, policy)),
		grpc.ChainStreamInterceptor(recoverStream(logger), auth.StreamServerInterceptor(keys, policy)),
	)
	ingestionv1.RegisterIngestionServiceServer(gs, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.GRPCAddr, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve gRPC: %w", err)
		}
		return nil
	})
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hsrv := &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := hsrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			return hsrv.Shutdown(sctx)
		})
	}
	g.Go(func() error { return st.Sweep(gctx) })
	g.Go(func() error { return st.Log().RunRetention(gctx, retentionInterval) })
	g.Go(func() error {
		<-gctx.Done()
		hs.Shutdown() // NOT_SERVING first, so balancers stop sending
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(cfg.ShutdownTimeout):
			gs.Stop()
			<-done
		}
		return nil
	})
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(ingestionv1.IngestionService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	logger.Info("ingestion serving", "grpc", lis.Addr().String(), "metrics", cfg.MetricsAddr, "partitions", cfg.Partitions)
	return g.Wait()
}

// recoverUnary turns a handler panic into Internal instead of killing the
// process and every other in-flight batch with it.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("handler panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("handler panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(srv, ss)
	}
}
