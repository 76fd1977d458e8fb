package app

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"

	hserver "github.com/cairn-dev/cairn/services/health/internal/server"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// Run validates the config, opens the store and the health log, registers
// the API and serves it with the consumers of the upstream logs and the
// daily timer loop until ctx ends.
func Run(ctx context.Context, cfg Config) error {
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
	// /readyz and the log say when writes fail (a full disk).
	srv.Storage(db.Trouble)
	if err := srv.Registry.Register(db.Collector("health")); err != nil {
		_ = srv.Close()
		return fmt.Errorf("register store metrics: %w", err)
	}
	a, err := New(Options{DB: db, Log: log, Clock: clk, Logger: logger, Registerer: srv.Registry})
	if err != nil {
		_ = srv.Close()
		return err
	}
	up := server.NewUpstreams(cfg.Server.ServiceKey)
	defer func() { _ = up.Close() }()
	src := Sources{Partitions: cfg.Server.OwnedPartitions(), Registerer: srv.Registry}
	if src.Ingestion, err = up.Ingestion(cfg.IngestionAddr); err != nil {
		_ = srv.Close()
		return err
	}
	if cfg.StagesAddr != "" {
		if src.Stages, err = up.Stages(cfg.StagesAddr); err != nil {
			_ = srv.Close()
			return err
		}
	}
	w, err := a.Workers(src)
	if err != nil {
		_ = srv.Close()
		return err
	}
	hserver.New(a, log, w.Lag).Register(srv.GRPC)
	srv.Ready("upstream", w.Ready)
	return srv.Run(ctx, w.Run...)
}
