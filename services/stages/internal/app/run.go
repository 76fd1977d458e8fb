package app

import (
	"context"
	"fmt"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	stagesserver "github.com/cairn-dev/cairn/services/stages/internal/server"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// Run wires the service in order: validate the configuration, set up
// telemetry, load the keys, build the server (server.New), open the store,
// register the API, then serve while the ingestion consumers, the timer
// loop and replays run in the background, until ctx ends.
func Run(ctx context.Context, cfg Config) error {
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
	// /readyz and the log say when writes fail (a full disk).
	srv.Storage(db.Trouble)
	if err := srv.Registry.Register(db.Collector("stages")); err != nil {
		return fmt.Errorf("register store metrics: %w", err)
	}
	clk := clock.Real{}
	parts := srv.Config().Partitions
	out, err := stream.OpenLog(db, "stages", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		return fmt.Errorf("open stages log: %w", err)
	}
	// IngestionAddr lists the ingestion replicas (split by workspace), each
	// with its own log: one consumer per replica, each following the
	// partitions this stages replica owns, so its journeys, timers and its
	// own log cover exactly the accounts of those partitions.
	up := server.NewUpstreams(cfg.Server.ServiceKey)
	defer func() { _ = up.Close() }()
	sources, err := up.Ingestion(cfg.IngestionAddr)
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
	a, err := New(Options{DB: db, Log: out, Source: replaySource, Partitions: parts, Clock: clk, Logger: logger, Registerer: srv.Registry})
	if err != nil {
		return err
	}
	consumers, err := stream.NewConsumers(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: ConsumerName, DB: db, Partitions: srv.Config().OwnedPartitions(),
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  a.Apply, Clock: clk, Logger: logger, Registerer: srv.Registry,
	}, sources, nil)
	if err != nil {
		return err
	}
	api, err := stagesserver.New(stagesserver.Options{App: a, Log: out, Lag: consumers.Lag})
	if err != nil {
		return err
	}
	api.Register(srv.GRPC)
	started = true
	srv.Ready("upstream", consumers.Ready)
	return srv.Run(ctx, consumers.Run, a.RunTimers, a.RunReplays)
}

var _ stagesserver.App = (*App)(nil)
