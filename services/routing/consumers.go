package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
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
	db     *store.DB
	parts  []uint32
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
	connect := func(addr string) (*grpc.ClientConn, error) {
		conn, err := server.Dial(addr, cfg.Server.ServiceKey)
		if err == nil {
			conns = append(conns, conn)
		}
		return conn, err
	}
	// Stages and health may run as several replicas, listed comma-separated
	// in replica order; partition p is read from the replica that owns it.
	connectAll := func(list string) ([]*grpc.ClientConn, error) {
		cs, err := server.DialList(list, cfg.Server.ServiceKey)
		conns = append(conns, cs...)
		return cs, err
	}
	if cfg.IngestionAddr != "" {
		conn, err := connect(cfg.IngestionAddr)
		if err != nil {
			return nil, conns, err
		}
		c := ingestionv1.NewIngestionServiceClient(conn)
		cons, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
			Name: "ingestion", DB: up.db, Partitions: up.parts, Clock: up.clk, Logger: up.logger, Registerer: up.reg,
			Source: stream.GRPCSource(func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[ingestionv1.SubscribeResponse], error) {
				return c.Subscribe(ctx, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: from})
			}, func(r *ingestionv1.SubscribeResponse) ([]*ingestionv1.LogRecord, uint64) {
				return r.GetRecords(), r.GetHeadOffset()
			}),
			Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
			Apply:  svc.ApplyIngestion,
		})
		if err != nil {
			return nil, conns, fmt.Errorf("ingestion consumer: %w", err)
		}
		// SLA timers wait for the touches still in the ingestion backlog.
		svc.SetIngestionProgress(cons.Lag)
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
			Apply:  svc.ApplyStages,
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
			Apply:  svc.ApplyHealth,
		})
		if err != nil {
			return nil, conns, fmt.Errorf("health consumer: %w", err)
		}
		runs = append(runs, cons.Run)
	}
	return runs, conns, nil
}
