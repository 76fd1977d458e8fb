package app

import (
	"context"
	"fmt"
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// Run opens the store and the routing log, registers the API and serves it
// with the timer loop and the upstream consumers until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.Server.ByWorkspace = true // always: see Parse
	shutdown, logger, err := telemetry.Setup(ctx, "routing")
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()
	cfg.Server.Logger = logger
	var clk clock.Clock = clock.Real{}
	if h := cfg.hooks; h != nil {
		for _, n := range h.notes {
			logger.Warn(n)
		}
		if h.clock != nil {
			clk = h.clock
		}
	}

	db, err := store.OpenDB(cfg.Server.DBPath(), pstore.Options{LockTimeout: 5 * time.Second})
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

	srv, err := server.New(cfg.Server, rserver.Policy(), keys)
	if err != nil {
		return err
	}
	// /readyz and the log say when writes fail (a full disk).
	srv.Storage(db.Trouble)
	if err := srv.Registry.Register(db.Collector("routing")); err != nil {
		_ = srv.Close()
		return fmt.Errorf("register store metrics: %w", err)
	}
	svc, err := New(Options{
		DB: db, Log: log, Partitions: cfg.Server.Partitions, Clock: clk, Logger: logger,
		Registerer: srv.Registry, TimerBatch: cfg.TimerBatch,
	})
	if err != nil {
		_ = srv.Close()
		return err
	}
	if h := cfg.hooks; h != nil {
		svc.AfterFire = h.afterFire
	}
	// The consumers are built below; GetStatus reads their lag through lags.
	var lags server.Lags
	routingv1.RegisterRoutingServiceServer(srv.GRPC, rserver.NewServer(svc, rserver.LogSubscriber(log), lags.Lag))

	up := server.NewUpstreams(cfg.Server.ServiceKey)
	defer func() { _ = up.Close() }()
	runs, err := svc.consumers(cfg, up, consumerOptions{
		db: db, partitions: cfg.Server.Partitions, clk: clk, logger: logger, reg: srv.Registry,
		owns: owns(srv.Config()), ready: srv.Ready, lags: &lags,
	})
	if err != nil {
		_ = srv.Close()
		return err
	}
	return srv.Run(ctx, append([]func(context.Context) error{svc.RunTimers}, runs...)...)
}

// owns is the workspace filter of a routing replica: nil (keep everything)
// for a single replica.
func owns(c server.Config) func(string) bool {
	if c.Replicas < 2 {
		return nil
	}
	return c.OwnsWorkspace
}
