package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/logtime"
	"github.com/cairn-dev/cairn/pkg/domain/logws"
	"github.com/cairn-dev/cairn/pkg/server"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// consumerOptions holds what every consumer needs.
type consumerOptions struct {
	db *pstore.DB
	// partitions is the upstream partition count (-partitions); routing
	// reads every partition of every upstream.
	partitions uint32
	// owns reports whether this routing replica keeps a workspace
	// (server.Config.OwnsWorkspace); the others' records are skipped.
	owns   func(workspace string) bool
	clk    clock.Clock
	logger *slog.Logger
	reg    prometheus.Registerer
	// ready, when set, is given each consumer's readiness check
	// (server.Server.Ready), so that routing reports NOT_SERVING while an
	// upstream it reads is unreachable.
	ready func(name string, check func() error)
	// lags, when set, is given each consumer's lag, for GetStatus.
	lags *server.Lags
}

// readyOn registers c's readiness and lag, when o asks for them.
func (o consumerOptions) readyOn(c interface {
	Ready() error
	Lag() []stream.Lag
}) {
	if o.ready != nil {
		o.ready("upstream", c.Ready)
	}
	if o.lags != nil {
		o.lags.Add(c.Lag)
	}
}

// consumers builds the consumers of the ingestion, stages and health logs
// (each skipped when its address is empty) over up and returns their Run
// functions.
func (s *Service) consumers(cfg Config, up *server.Upstreams, o consumerOptions) ([]func(context.Context) error, error) {
	parts := make([]uint32, o.partitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	var runs []func(context.Context) error
	// events, when ingestion is read, is the horizon the derived logs wait
	// for: a health signal or stage change is applied only once the events
	// up to its time are, so what routing does with it (a duplicate fold,
	// a touch credited, a PQL rule) does not depend on which consumer ran
	// ahead (stream.ConsumerOptions.After).
	var events stream.Horizon
	if cfg.IngestionAddr != "" {
		// IngestionAddr lists the ingestion replicas (split by workspace),
		// each with its own log and so its own consumer ("ingestion",
		// "ingestion-1", ...).
		sources, err := up.Ingestion(cfg.IngestionAddr)
		if err != nil {
			return nil, err
		}
		cons, err := stream.NewConsumers(stream.ConsumerOptions[*ingestionv1.LogRecord]{
			Name: "ingestion", DB: o.db, Partitions: parts, Clock: o.clk, Logger: o.logger, Registerer: o.reg,
			Offset:    func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
			EventTime: logtime.Ingestion,
		}, sources, func(k int) func(*pstore.Tx, uint32, []*ingestionv1.LogRecord) error {
			return func(tx *pstore.Tx, p uint32, recs []*ingestionv1.LogRecord) error {
				return s.ApplyIngestion(tx, p, logws.Owned(o.owns, recs, logws.Ingestion))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("ingestion consumer: %w", err)
		}
		// SLA timers wait for the touches still in the ingestion backlog of
		// any ingestion replica, and the stages and health logs, derived
		// from the same events, are applied in event time behind it.
		s.SetIngestionHorizon(cons)
		events = cons
		runs = append(runs, cons.Run)
		o.readyOn(cons)
	}
	if cfg.StagesAddr != "" {
		// Stages and health may run as several replicas, listed
		// comma-separated in replica order; partition p is read from the
		// replica that owns it.
		source, err := up.Stages(cfg.StagesAddr)
		if err != nil {
			return nil, fmt.Errorf("stages sources: %w", err)
		}
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*stagesv1.LogRecord]{
			Name: "stages", DB: o.db, Partitions: parts, Clock: o.clk, Logger: o.logger, Registerer: o.reg,
			Source: source, EventTime: logtime.Stages, After: events,
			Offset: func(r *stagesv1.LogRecord) uint64 { return r.GetOffset() },
			Apply: func(tx *pstore.Tx, p uint32, recs []*stagesv1.LogRecord) error {
				return s.ApplyStages(tx, p, logws.Owned(o.owns, recs, logws.Stages))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("stages consumer: %w", err)
		}
		runs = append(runs, cons.Run)
		o.readyOn(cons)
	}
	if cfg.HealthAddr != "" {
		source, err := up.Health(cfg.HealthAddr)
		if err != nil {
			return nil, fmt.Errorf("health sources: %w", err)
		}
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*healthv1.LogRecord]{
			Name: "health", DB: o.db, Partitions: parts, Clock: o.clk, Logger: o.logger, Registerer: o.reg,
			Source: source, EventTime: logtime.Health, After: events,
			Offset: func(r *healthv1.LogRecord) uint64 { return r.GetOffset() },
			Apply: func(tx *pstore.Tx, p uint32, recs []*healthv1.LogRecord) error {
				return s.ApplyHealth(tx, p, logws.Owned(o.owns, recs, logws.Health))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("health consumer: %w", err)
		}
		runs = append(runs, cons.Run)
		o.readyOn(cons)
	}
	return runs, nil
}
