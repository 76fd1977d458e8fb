package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

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

// run validates the config, opens the store and the routing log, registers
// the API and serves it with the timer loop and the upstream consumers until
// ctx ends.
func run(ctx context.Context, cfg config) error {
	// Owner load, round-robin positions and capacity are workspace-wide
	// state, so routing scales by workspace, not by partition: replica k of
	// -replicas K keeps the workspaces with stream.WorkspaceReplica == k,
	// refuses calls for the others (pkg/server) and skips their records
	// while reading every upstream partition (consumers.go).
	cfg.Server.ByWorkspace = true
	if err := cfg.Server.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	shutdown, logger, err := telemetry.Setup(ctx, "routing")
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()
	cfg.Server.Logger = logger
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

	srv, err := server.New(cfg.Server, rserver.Policy(), keys)
	if err != nil {
		return err
	}
	if err := srv.Registry.Register(db.Collector("routing")); err != nil {
		_ = srv.Close()
		return fmt.Errorf("register store metrics: %w", err)
	}
	svc, err := rserver.New(rserver.Options{
		DB: db, Log: log, Partitions: cfg.Server.Partitions, Clock: clk, Logger: logger,
		Registerer: srv.Registry, TimerBatch: cfg.TimerBatch,
	})
	if err != nil {
		_ = srv.Close()
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
	routingv1.RegisterRoutingServiceServer(srv.GRPC, rserver.NewServer(svc, rserver.LogSubscriber(log)))

	parts := make([]uint32, cfg.Server.Partitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	runs, conns, err := consumers(cfg, svc, upstream{
		db: db, parts: parts, partitions: cfg.Server.Partitions, clk: clk, logger: logger, reg: srv.Registry,
		owns: owns(srv.Config()),
	})
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
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
