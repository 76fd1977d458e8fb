package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/stages/internal/engine"
	stagesserver "github.com/cairn-dev/cairn/services/stages/internal/server"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// config is the service configuration.
type config struct {
	// Server holds the flags every service shares.
	Server server.Config
	// IngestionAddr is the ingestion service's gRPC address, or its
	// replicas' comma-separated in replica order (-ingestion-addr).
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
	fs.StringVar(&c.IngestionAddr, "ingestion-addr", addr, "ingestion gRPC address, or its replicas' addresses comma-separated in replica order (env "+server.EnvName("ingestion-addr")+")")
	fs.BoolVar(&c.NoSync, "no-sync", false, "skip fsync; acknowledged state may be lost on a crash (benchmarks only)")
}

// run wires the service in order: validate config (server.New), open the
// store, register the API, then serve while the ingestion consumer, the timer loop and
// replays run in the background, until ctx ends.
func run(ctx context.Context, cfg config) error {
	if cfg.IngestionAddr == "" {
		return errors.New("invalid configuration: -ingestion-addr: empty")
	}
	shutdown, logger, err := telemetry.Setup(ctx, "stages")
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	cfg.Server.Logger = logger
	keys, err := auth.LoadKeyring(cfg.Server.KeysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	srv, err := server.New(cfg.Server, stagesserver.Policy(), keys)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		if !started {
			_ = srv.Close()
		}
	}()
	db, err := store.Open(srv.Config().DBPath(), cfg.NoSync)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if err := srv.Registry.Register(db.Collector("stages")); err != nil {
		return fmt.Errorf("register store metrics: %w", err)
	}
	clk := clock.Real{}
	parts := srv.Config().Partitions
	out, err := stream.OpenLog(db, "stages", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		return fmt.Errorf("open stages log: %w", err)
	}
	eng, err := engine.New(engine.Options{DB: db, Log: out, Clock: clk, Logger: logger, Registerer: srv.Registry})
	if err != nil {
		return err
	}
	// IngestionAddr lists the ingestion replicas (split by workspace), each
	// with its own log: one consumer per replica, each following the
	// partitions this stages replica owns, so its journeys, timers and its
	// own log cover exactly the accounts of those partitions.
	sources, conns, err := server.IngestionSources(cfg.IngestionAddr, cfg.Server.ServiceKey)
	if err != nil {
		return fmt.Errorf("dial ingestion: %w", err)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	consumers, err := stream.NewConsumers(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: db, Partitions: srv.Config().OwnedPartitions(),
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  eng.Apply, Clock: clk, Logger: logger, Registerer: srv.Registry,
	}, sources, nil)
	if err != nil {
		return err
	}
	// A replay re-reads one log from its start; with several ingestion
	// replicas there is no single log to read, so replays are off (they
	// are also refused by a gateway over several stages replicas).
	var replaySource stream.Source[*ingestionv1.LogRecord]
	if len(sources) == 1 {
		replaySource = sources[0]
	}
	api, err := stagesserver.New(stagesserver.Options{DB: db, Log: out, Engine: eng, Source: replaySource, Partitions: parts, Clock: clk, Logger: logger})
	if err != nil {
		return err
	}
	api.Register(srv.GRPC)
	started = true
	return srv.Run(ctx, consumers.Run, eng.RunTimers, api.Run)
}
