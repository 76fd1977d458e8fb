// Package app wires the health service's background work: the ingestion
// and stages consumers and the daily timer loop. main.go uses it with gRPC
// sources; tests use local logs.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/services/health/internal/engine"
)

// Options configure Background.
type Options struct {
	// DB is the health store.
	DB *kv.DB
	// Engine applies records.
	Engine *engine.Engine
	// Ingestion is the ingestion log source (required).
	Ingestion stream.Source[*ingestionv1.LogRecord]
	// Stages is the stages log source; nil runs without stage data.
	Stages stream.Source[*stagesv1.LogRecord]
	// Partitions is the upstream partition count; every partition is followed
	// unless Owned is set.
	Partitions uint32
	// Owned, when not empty, lists the partitions this replica follows
	// (server.Config.OwnedPartitions).
	Owned []uint32
	// Clock drives timers and backoff.
	Clock clock.Clock
	// Logger receives consumer errors.
	Logger *slog.Logger
	// Registerer receives consumer lag metrics; nil disables them.
	Registerer prometheus.Registerer
}

// Workers are the background loops of the service.
type Workers struct {
	// Ingestion consumes the ingestion log.
	Ingestion *stream.Consumer[*ingestionv1.LogRecord]
	// Stages consumes the stages log; nil when not configured.
	Stages *stream.Consumer[*stagesv1.LogRecord]
	// Run functions, one per loop, for an errgroup.
	Run []func(ctx context.Context) error
}

// Background builds the consumers and the timer loop.
func Background(o Options) (*Workers, error) {
	if o.DB == nil || o.Engine == nil || o.Ingestion == nil {
		return nil, errors.New("app: DB, Engine and Ingestion are required")
	}
	if o.Partitions == 0 {
		o.Partitions = 1
	}
	parts := make([]uint32, o.Partitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	if len(o.Owned) > 0 {
		parts = o.Owned
	}
	w := &Workers{}
	var err error
	w.Ingestion, err = stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: o.DB, Source: o.Ingestion, Partitions: parts,
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  o.Engine.ApplyIngestion, Clock: o.Clock, Logger: o.Logger, Registerer: o.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("create ingestion consumer: %w", err)
	}
	w.Run = append(w.Run, w.Ingestion.Run)
	if o.Stages != nil {
		w.Stages, err = stream.NewConsumer(stream.ConsumerOptions[*stagesv1.LogRecord]{
			Name: "stages", DB: o.DB, Source: o.Stages, Partitions: parts,
			Offset: func(r *stagesv1.LogRecord) uint64 { return r.GetOffset() },
			Apply:  o.Engine.ApplyStages, Clock: o.Clock, Logger: o.Logger, Registerer: o.Registerer,
		})
		if err != nil {
			return nil, fmt.Errorf("create stages consumer: %w", err)
		}
		w.Run = append(w.Run, w.Stages.Run)
	}
	w.Run = append(w.Run, func(ctx context.Context) error { return o.Engine.RunTimers(ctx, o.DB) })
	return w, nil
}
