package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
)

// upstream holds what every consumer needs.
type upstream struct {
	db    *store.DB
	parts []uint32
	// partitions is the upstream partition count (-partitions).
	partitions uint32
	// owns reports whether this routing replica keeps a workspace
	// (server.Config.OwnsWorkspace); the others' records are skipped.
	owns   func(workspace string) bool
	clk    clock.Clock
	logger *slog.Logger
	reg    prometheus.Registerer
}

// consumers builds the consumers of the ingestion, stages and health logs
// (each skipped when its address is empty) and returns their Run functions
// and the connections to close on exit.
func consumers(cfg config, svc *rserver.Service, up upstream) ([]func(context.Context) error, []*grpc.ClientConn, error) {
	var (
		runs  []func(context.Context) error
		conns []*grpc.ClientConn
	)
	// Stages and health may run as several replicas, listed comma-separated
	// in replica order; partition p is read from the replica that owns it.
	connectAll := func(list string) ([]*grpc.ClientConn, error) {
		cs, err := server.DialList(list, cfg.Server.ServiceKey)
		conns = append(conns, cs...)
		return cs, err
	}
	if cfg.IngestionAddr != "" {
		// IngestionAddr lists the ingestion replicas (split by workspace),
		// each with its own log and so its own consumer ("ingestion",
		// "ingestion-1", ...).
		sources, cs, err := server.IngestionSources(cfg.IngestionAddr, cfg.Server.ServiceKey)
		conns = append(conns, cs...)
		if err != nil {
			return nil, conns, err
		}
		watermark := watermarkKey(up.partitions, len(sources))
		cons, err := stream.NewConsumers(stream.ConsumerOptions[*ingestionv1.LogRecord]{
			Name: "ingestion", DB: up.db, Partitions: up.parts, Clock: up.clk, Logger: up.logger, Registerer: up.reg,
			Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		}, sources, func(k int) func(*bbolt.Tx, uint32, []*ingestionv1.LogRecord) error {
			return func(tx *bbolt.Tx, p uint32, recs []*ingestionv1.LogRecord) error {
				return svc.ApplyIngestion(tx, watermark(k, p), owned(up.owns, recs, ingestionWorkspace))
			}
		})
		if err != nil {
			return nil, conns, fmt.Errorf("ingestion consumer: %w", err)
		}
		// SLA timers wait for the touches still in the ingestion backlog of
		// any ingestion replica: each (replica, partition) is reported
		// under the key its watermark is kept under, so the horizon is the
		// lowest over every replica's backlog.
		svc.SetIngestionProgress(func() []stream.Lag {
			lags := make([]stream.Lag, 0, len(sources)*len(up.parts))
			for k, c := range cons {
				for _, l := range c.Lag() {
					l.Partition = watermark(k, l.Partition)
					lags = append(lags, l)
				}
			}
			return lags
		})
		runs = append(runs, cons.Run)
	}
	if cfg.StagesAddr != "" {
		cs, err := connectAll(cfg.StagesAddr)
		if err != nil {
			return nil, conns, err
		}
		source, err := stream.RouteConns(cs, func(conn *grpc.ClientConn) stream.Source[*stagesv1.LogRecord] {
			c := stagesv1.NewStagesServiceClient(conn)
			return stream.GRPCSource(func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[stagesv1.SubscribeResponse], error) {
				return c.Subscribe(ctx, &stagesv1.SubscribeRequest{Partition: p, FromOffset: from})
			}, func(r *stagesv1.SubscribeResponse) ([]*stagesv1.LogRecord, uint64) {
				return r.GetRecords(), r.GetHeadOffset()
			})
		})
		if err != nil {
			return nil, conns, fmt.Errorf("stages sources: %w", err)
		}
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*stagesv1.LogRecord]{
			Name: "stages", DB: up.db, Partitions: up.parts, Clock: up.clk, Logger: up.logger, Registerer: up.reg,
			Source: source,
			Offset: func(r *stagesv1.LogRecord) uint64 { return r.GetOffset() },
			Apply: func(tx *bbolt.Tx, p uint32, recs []*stagesv1.LogRecord) error {
				return svc.ApplyStages(tx, p, owned(up.owns, recs, stagesWorkspace))
			},
		})
		if err != nil {
			return nil, conns, fmt.Errorf("stages consumer: %w", err)
		}
		runs = append(runs, cons.Run)
	}
	if cfg.HealthAddr != "" {
		cs, err := connectAll(cfg.HealthAddr)
		if err != nil {
			return nil, conns, err
		}
		source, err := stream.RouteConns(cs, func(conn *grpc.ClientConn) stream.Source[*healthv1.LogRecord] {
			c := healthv1.NewHealthServiceClient(conn)
			return stream.GRPCSource(func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[healthv1.SubscribeResponse], error) {
				return c.Subscribe(ctx, &healthv1.SubscribeRequest{Partition: p, FromOffset: from})
			}, func(r *healthv1.SubscribeResponse) ([]*healthv1.LogRecord, uint64) {
				return r.GetRecords(), r.GetHeadOffset()
			})
		})
		if err != nil {
			return nil, conns, fmt.Errorf("health sources: %w", err)
		}
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*healthv1.LogRecord]{
			Name: "health", DB: up.db, Partitions: up.parts, Clock: up.clk, Logger: up.logger, Registerer: up.reg,
			Source: source,
			Offset: func(r *healthv1.LogRecord) uint64 { return r.GetOffset() },
			Apply: func(tx *bbolt.Tx, p uint32, recs []*healthv1.LogRecord) error {
				return svc.ApplyHealth(tx, p, owned(up.owns, recs, healthWorkspace))
			},
		})
		if err != nil {
			return nil, conns, fmt.Errorf("health consumer: %w", err)
		}
		runs = append(runs, cons.Run)
	}
	return runs, conns, nil
}

// owned drops the records of workspaces another routing replica keeps.
// Routing is split by workspace: every replica reads every partition of
// every upstream and applies only its own workspaces' records (the cursor
// still moves past the others). A single replica keeps everything, and
// the slice is returned as is.
func owned[T any](owns func(string) bool, recs []T, workspace func(T) string) []T {
	if owns == nil {
		return recs
	}
	out := recs[:0:0]
	for _, r := range recs {
		if owns(workspace(r)) {
			out = append(out, r)
		}
	}
	return out
}

func ingestionWorkspace(r *ingestionv1.LogRecord) string {
	if ts := r.GetTombstone(); ts != nil {
		return ts.GetWorkspace()
	}
	return r.GetEvent().GetWorkspace()
}

func stagesWorkspace(r *stagesv1.LogRecord) string {
	switch {
	case r.GetTransition() != nil:
		return r.GetTransition().GetWorkspace()
	case r.GetSignal() != nil:
		return r.GetSignal().GetWorkspace()
	}
	return r.GetTombstone().GetWorkspace()
}

func healthWorkspace(r *healthv1.LogRecord) string {
	switch {
	case r.GetScoreChange() != nil:
		return r.GetScoreChange().GetWorkspace()
	case r.GetSignal() != nil:
		return r.GetSignal().GetWorkspace()
	}
	return r.GetTombstone().GetWorkspace()
}

// watermarkKey returns the key under which the service keeps the event-time
// watermark of partition p of ingestion replica k (ApplyIngestion's source
// argument, which it uses for nothing else): p itself for one
// replica, k*partitions+p for several, so that one replica's progress on a
// partition does not hide another's backlog on it.
func watermarkKey(partitions uint32, replicas int) func(k int, p uint32) uint32 {
	if replicas < 2 {
		return func(_ int, p uint32) uint32 { return p }
	}
	return func(k int, p uint32) uint32 { return uint32(k)*partitions + p }
}
