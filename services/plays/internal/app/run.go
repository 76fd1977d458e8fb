package app

import (
	"context"
	"fmt"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/logtime"
	"github.com/cairn-dev/cairn/pkg/domain/logws"
	"github.com/cairn-dev/cairn/pkg/server"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	pserver "github.com/cairn-dev/cairn/services/plays/internal/server"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// Run opens the store, registers the API and serves it with the upstream
// consumers, the task timers and the delivery engine until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.Server.ByWorkspace = true
	shutdown, logger, err := telemetry.Setup(ctx, "plays")
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()
	cfg.Server.Logger = logger
	var clk clock.Clock = clock.Real{}

	db, err := store.OpenDB(cfg.Server.DBPath(), pstore.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open plays store: %w", err)
	}
	defer func() { _ = db.Close() }()
	keys, err := auth.LoadKeyring(cfg.Server.KeysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	srv, err := server.New(cfg.Server, pserver.Policy(), keys)
	if err != nil {
		return err
	}
	// /readyz and the log say when writes fail (a full disk).
	srv.Storage(db.Trouble)
	if err := srv.Registry.Register(db.Collector("plays")); err != nil {
		_ = srv.Close()
		return fmt.Errorf("register store metrics: %w", err)
	}
	var svc *Service
	engine, err := deliver.New(deliver.Options{
		Clock: clk, Policy: cfg.policy(), Horizon: cfg.Horizon, Logger: logger, Registerer: srv.Registry,
		Record: func(ctx context.Context, outs []deliver.Outcome) error { return svc.Record(ctx, outs) },
	})
	if err != nil {
		_ = srv.Close()
		return err
	}
	dir := NewDirectory()
	svc = New(Options{
		DB: db, Clock: clk, Logger: logger, Engine: engine, Policy: cfg.policy(),
		DashboardURL: cfg.DashboardURL, TaskExpiry: cfg.TaskExpiry, Directory: dir,
	})
	n, err := svc.Resume()
	if err != nil {
		_ = srv.Close()
		return err
	}
	if n > 0 {
		logger.Info("plays: resuming the outbox", "pending", n)
	}
	var lags server.Lags
	playsv1.RegisterPlaysServiceServer(srv.GRPC, pserver.New(svc, lags.Lag))

	up := server.NewUpstreams(cfg.Server.ServiceKey)
	defer func() { _ = up.Close() }()
	runs, err := svc.consumers(cfg, up, consumerOptions{
		db: db, partitions: cfg.Server.Partitions, clk: clk, logger: logger, srv: srv, lags: &lags,
		owns: owns(srv.Config()),
	})
	if err != nil {
		_ = srv.Close()
		return err
	}
	background := []func(context.Context) error{svc.RunTimers, engine.Run}
	if cfg.RoutingAddr != "" {
		// Owners' business hours, for due dates, from routing's directory.
		conns, err := server.DialList(cfg.RoutingAddr, cfg.Server.ServiceKey)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("-routing-addr: %w", err)
		}
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		clients := make([]routingv1.RoutingServiceClient, len(conns))
		for i, c := range conns {
			clients[i] = routingv1.NewRoutingServiceClient(c)
		}
		background = append(background, func(ctx context.Context) error { return svc.RunDirectory(ctx, clients) })
	}
	return srv.Run(ctx, append(background, runs...)...)
}

// owns is the workspace filter of a plays replica: nil for a single one.
func owns(c server.Config) func(string) bool {
	if c.Replicas < 2 {
		return nil
	}
	return c.OwnsWorkspace
}

// consumerOptions holds what every consumer needs.
type consumerOptions struct {
	db         *pstore.DB
	partitions uint32
	clk        clock.Clock
	logger     interface{ Info(string, ...any) }
	srv        *server.Server
	lags       *server.Lags
	owns       func(string) bool
}

// consumers builds the consumers of the stages, health and routing logs
// (each skipped when its address is empty) and returns their Run
// functions. Plays reads every partition of each, as routing does.
func (s *Service) consumers(cfg Config, up *server.Upstreams, o consumerOptions) ([]func(context.Context) error, error) {
	parts := make([]uint32, o.partitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	ready := func(c interface {
		Ready() error
		Lag() []stream.Lag
	}) {
		o.srv.Ready("upstream", c.Ready)
		o.lags.Add(c.Lag)
	}
	var runs []func(context.Context) error
	replay := &Sources{Partitions: o.partitions}
	if cfg.StagesAddr != "" {
		source, err := up.Stages(cfg.StagesAddr)
		if err != nil {
			return nil, fmt.Errorf("stages sources: %w", err)
		}
		replay.Stages = source
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*stagesv1.LogRecord]{
			Name: "stages", DB: o.db, Partitions: parts, Clock: o.clk, Logger: s.logger, Registerer: o.srv.Registry,
			Source: source, EventTime: logtime.Stages,
			Offset: func(r *stagesv1.LogRecord) uint64 { return r.GetOffset() },
			Apply: func(tx *pstore.Tx, p uint32, recs []*stagesv1.LogRecord) error {
				return s.ApplyStages(tx, p, logws.Owned(o.owns, recs, logws.Stages))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("stages consumer: %w", err)
		}
		runs = append(runs, cons.Run)
		ready(cons)
	}
	if cfg.HealthAddr != "" {
		source, err := up.Health(cfg.HealthAddr)
		if err != nil {
			return nil, fmt.Errorf("health sources: %w", err)
		}
		replay.Health = source
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*healthv1.LogRecord]{
			Name: "health", DB: o.db, Partitions: parts, Clock: o.clk, Logger: s.logger, Registerer: o.srv.Registry,
			Source: source, EventTime: logtime.Health,
			Offset: func(r *healthv1.LogRecord) uint64 { return r.GetOffset() },
			Apply: func(tx *pstore.Tx, p uint32, recs []*healthv1.LogRecord) error {
				return s.ApplyHealth(tx, p, logws.Owned(o.owns, recs, logws.Health))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("health consumer: %w", err)
		}
		runs = append(runs, cons.Run)
		ready(cons)
	}
	if cfg.RoutingAddr != "" {
		sources, err := up.Routing(cfg.RoutingAddr)
		if err != nil {
			return nil, err
		}
		cons, err := stream.NewConsumers(stream.ConsumerOptions[*routingv1.LogRecord]{
			Name: "routing", DB: o.db, Partitions: parts, Clock: o.clk, Logger: s.logger, Registerer: o.srv.Registry,
			Offset:    func(r *routingv1.LogRecord) uint64 { return r.GetOffset() },
			EventTime: logtime.Routing,
		}, sources, func(k int) func(*pstore.Tx, uint32, []*routingv1.LogRecord) error {
			return func(tx *pstore.Tx, p uint32, recs []*routingv1.LogRecord) error {
				return s.ApplyRouting(tx, k, p, logws.Owned(o.owns, recs, logws.Routing))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("routing consumer: %w", err)
		}
		runs = append(runs, cons.Run)
		ready(cons)
		replay.Routing = sources
	}
	if len(runs) > 0 {
		// A replay reads the same logs again from their start.
		s.sources = replay
	}
	return runs, nil
}
