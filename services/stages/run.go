package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/stages/internal/engine"
	stagesserver "github.com/cairn-dev/cairn/services/stages/internal/server"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// config is the service configuration.
type config struct {
	// Server holds the flags every service shares.
	Server server.Config
	// IngestionAddr is the ingestion service's gRPC address (-ingestion-addr).
	IngestionAddr string
	// NoSync skips fsync (-no-sync); only for benchmarks.
	NoSync bool
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	c.Server.RegisterFlags(fs)
	addr := "127.0.0.1:7101"
	if v, ok := os.LookupEnv(server.EnvName("ingestion-addr")); ok {
		addr = v
	}
	fs.StringVar(&c.IngestionAddr, "ingestion-addr", addr, "ingestion gRPC address (env "+server.EnvName("ingestion-addr")+")")
	fs.BoolVar(&c.NoSync, "no-sync", false, "skip fsync; acknowledged state may be lost on a crash (benchmarks only)")
}

// run wires the service: validate config, open the store, start the
// consumer, the timer loop, replays, the gRPC server and the metrics
// listener, and stop them all when ctx ends.
func run(ctx context.Context, cfg config) error {
	if err := cfg.Server.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.IngestionAddr == "" {
		return errors.New("invalid configuration: -ingestion-addr: empty")
	}
	shutdown, logger, err := telemetry.Setup(ctx, "stages")
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	keys, err := auth.LoadKeyring(cfg.Server.KeysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	db, err := store.Open(cfg.Server.DBPath(), cfg.NoSync)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	clk := clock.Real{}
	parts := cfg.Server.Partitions
	out, err := stream.OpenLog(db, "stages", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		return fmt.Errorf("open stages log: %w", err)
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register process metrics: %w", err)
		}
	}
	eng, err := engine.New(engine.Options{DB: db, Log: out, Clock: clk, Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(cfg.IngestionAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.Bearer(cfg.Server.ServiceKey)))
	if err != nil {
		return fmt.Errorf("dial ingestion %s: %w", cfg.IngestionAddr, err)
	}
	defer func() { _ = conn.Close() }()
	ingestion := ingestionv1.NewIngestionServiceClient(conn)
	source := stream.GRPCSource(
		func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[ingestionv1.SubscribeResponse], error) {
			return ingestion.Subscribe(ctx, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: from})
		},
		func(r *ingestionv1.SubscribeResponse) ([]*ingestionv1.LogRecord, uint64) {
			return r.Records, r.HeadOffset
		},
	)
	partitions := make([]uint32, parts)
	for i := range partitions {
		partitions[i] = uint32(i)
	}
	consumer, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: db, Source: source, Partitions: partitions,
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  eng.Apply, Clock: clk, Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	srv, err := stagesserver.New(stagesserver.Options{DB: db, Log: out, Engine: eng, Source: source, Partitions: parts, Clock: clk, Logger: logger})
	if err != nil {
		return err
	}
	policy := stagesserver.Policy()
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.Server.MaxRecvBytes),
		grpc.ChainUnaryInterceptor(deadline(cfg.Server.RequestTimeout), auth.UnaryServerInterceptor(keys, policy)),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, policy)),
	)
	srv.Register(g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	lis, err := net.Listen("tcp", cfg.Server.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Server.GRPCAddr, err)
	}
	logger.Info("stages serving", "grpc", lis.Addr().String(), "metrics", cfg.Server.MetricsAddr, "ingestion", cfg.IngestionAddr)

	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.Serve(lis) })
	eg.Go(func() error { return consumer.Run(ctx) })
	eg.Go(func() error { return eng.RunTimers(ctx) })
	eg.Go(func() error { return srv.Run(ctx) })
	if cfg.Server.MetricsAddr != "" {
		ms := &http.Server{Addr: cfg.Server.MetricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		eg.Go(func() error {
			if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics listener: %w", err)
			}
			return nil
		})
		eg.Go(func() error {
			<-ctx.Done()
			return ms.Close()
		})
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("cairn.stages.v1.StagesService", healthpb.HealthCheckResponse_SERVING)
	eg.Go(func() error {
		<-ctx.Done()
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(cfg.Server.ShutdownTimeout):
			g.Stop()
		}
		return nil
	})
	if err := eg.Wait(); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		logger.Error("stages stopped", "err", err)
		return err
	}
	return nil
}

// deadline gives unary calls without a client deadline the configured one.
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
