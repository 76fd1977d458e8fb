package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"google.golang.org/grpc"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/engine"
	hserver "github.com/cairn-dev/cairn/services/health/internal/server"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// config is the process configuration.
type config struct {
	// Server holds the flags shared by every service.
	Server server.Config
	// IngestionAddr is the ingestion service whose log is consumed, or its
	// replicas' addresses comma-separated in replica order.
	IngestionAddr string
	// StagesAddr is the stages service whose log is consumed; empty skips it.
	StagesAddr string
}

// run validates the config, opens the store and the health log, registers
// the API and serves it with the consumers and the daily timer loop until
// ctx ends.
func run(ctx context.Context, cfg config) error {
	if err := cfg.Server.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.IngestionAddr == "" {
		return errors.New("invalid configuration: -ingestion-addr is required")
	}
	shutdown, logger, err := telemetry.Setup(ctx, "health")
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()
	cfg.Server.Logger = logger
	if cfg.Server.Partitions == 0 {
		cfg.Server.Partitions = server.DefaultPartitions
	}
	clk := clock.Real{}

	db, err := kv.Open(cfg.Server.DBPath(), kv.Options{SchemaVersion: store.SchemaVersion, Migrations: store.Migrations, LockTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open health store: %w", err)
	}
	defer func() { _ = db.Close() }()
	log, err := stream.OpenLog(db, "health", stream.LogOptions{Partitions: cfg.Server.Partitions, Clock: clk})
	if err != nil {
		return fmt.Errorf("open health log: %w", err)
	}
	keys, err := auth.LoadKeyring(cfg.Server.KeysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	srv, err := server.New(cfg.Server, hserver.Policy(), keys)
	if err != nil {
		return err
	}
	if err := srv.Registry.Register(db.Collector("health")); err != nil {
		_ = srv.Close()
		return fmt.Errorf("register store metrics: %w", err)
	}
	eng, err := engine.New(engine.Config{Log: log, Clock: clk, Logger: logger, Registerer: srv.Registry})
	if err != nil {
		_ = srv.Close()
		return err
	}
	hserver.New(db, eng, log, clk, logger).Register(srv.GRPC)

	// IngestionAddr lists the ingestion replicas (split by workspace), each
	// with its own log and so its own consumer: internal/app follows
	// replica 0 (consumer "ingestion"), and the others are followed here
	// under stream.ReplicaName ("ingestion-1", ...), over the same owned
	// partitions and with the same engine.
	ingSources, ingConns, err := server.IngestionSources(cfg.IngestionAddr, cfg.Server.ServiceKey)
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("dial ingestion: %w", err)
	}
	defer func() {
		for _, c := range ingConns {
			_ = c.Close()
		}
	}()
	var more []func(context.Context) error
	for k := 1; k < len(ingSources); k++ {
		c, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
			Name: stream.ReplicaName("ingestion", k), DB: db, Source: ingSources[k], Partitions: cfg.Server.OwnedPartitions(),
			Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
			Apply:  eng.ApplyIngestion, Clock: clk, Logger: logger, Registerer: srv.Registry,
		})
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("create ingestion consumer %d: %w", k, err)
		}
		more = append(more, c.Run)
	}
	opts := app.Options{
		DB: db, Engine: eng, Partitions: cfg.Server.Partitions, Owned: cfg.Server.OwnedPartitions(), Clock: clk, Logger: logger, Registerer: srv.Registry,
		Ingestion: ingSources[0],
	}
	if cfg.StagesAddr != "" {
		// StagesAddr may list the stages replicas; partition p is read from
		// the one that owns it.
		stConns, err := server.DialList(cfg.StagesAddr, cfg.Server.ServiceKey)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("dial stages: %w", err)
		}
		defer func() {
			for _, c := range stConns {
				_ = c.Close()
			}
		}()
		opts.Stages, err = stream.RouteConns(stConns, func(conn *grpc.ClientConn) stream.Source[*stagesv1.LogRecord] {
			st := stagesv1.NewStagesServiceClient(conn)
			return stream.GRPCSource(
				func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[stagesv1.SubscribeResponse], error) {
					return st.Subscribe(ctx, &stagesv1.SubscribeRequest{Partition: p, FromOffset: from})
				},
				func(r *stagesv1.SubscribeResponse) ([]*stagesv1.LogRecord, uint64) {
					return r.GetRecords(), r.GetHeadOffset()
				})
		})
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("stages sources: %w", err)
		}
	}
	w, err := app.Background(opts)
	if err != nil {
		_ = srv.Close()
		return err
	}
	return srv.Run(ctx, append(w.Run, more...)...)
}
