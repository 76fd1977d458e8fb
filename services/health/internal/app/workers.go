package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/logtime"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Sources are the upstream logs the service consumes.
type Sources struct {
	// Ingestion holds one source per ingestion replica, in replica order
	// (server.Upstreams.Ingestion); at least one. Ingestion is split by
	// workspace and each replica has its own log, so each is followed by
	// its own consumer, "ingestion" for replica 0 and "ingestion-<k>"
	// (stream.ReplicaName) for the others.
	Ingestion []stream.Source[*ingestionv1.LogRecord]
	// Stages is the stages log (server.Upstreams.Stages); nil runs without
	// stage data.
	Stages stream.Source[*stagesv1.LogRecord]
	// Partitions lists the upstream partitions this replica follows
	// (server.Config.OwnedPartitions).
	Partitions []uint32
	// Registerer receives consumer lag metrics; nil disables them.
	Registerer prometheus.Registerer
}

// Workers are the background loops of the service.
type Workers struct {
	// Ingestion consumes the ingestion logs, one consumer per replica.
	Ingestion stream.Consumers[*ingestionv1.LogRecord]
	// Stages consumes the stages log; nil when not configured.
	Stages *stream.Consumer[*stagesv1.LogRecord]
	// Run functions, one per loop, for an errgroup (server.Run).
	Run []func(ctx context.Context) error
}

// Ready reports whether every upstream log has been reached and its head
// heard (stream.Consumer.Ready), for server.Server.Ready.
func (w *Workers) Ready() error {
	if w.Stages == nil {
		return w.Ingestion.Ready()
	}
	return stream.JoinReady(w.Ingestion.Ready(), w.Stages.Ready())
}

// Lag reports the lag of every consumer, the ingestion replicas' first,
// for GetStatus.
func (w *Workers) Lag() []stream.Lag {
	lags := w.Ingestion.Lag()
	if w.Stages != nil {
		lags = append(lags, w.Stages.Lag()...)
	}
	return lags
}

// Workers builds the consumers of s, which apply records with
// ApplyIngestion and ApplyStages, and the daily timer loop (RunTimers).
func (a *App) Workers(s Sources) (*Workers, error) {
	if len(s.Ingestion) == 0 {
		return nil, errors.New("app: an ingestion source is required")
	}
	w := &Workers{}
	var err error
	w.Ingestion, err = stream.NewConsumers(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: a.db, Partitions: s.Partitions,
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  a.ApplyIngestion, Clock: a.clk, Logger: a.logger, Registerer: s.Registerer,
		EventTime: logtime.Ingestion,
	}, s.Ingestion, nil)
	if err != nil {
		return nil, fmt.Errorf("create ingestion consumers: %w", err)
	}
	w.Run = append(w.Run, w.Ingestion.Run)
	if s.Stages != nil {
		w.Stages, err = stream.NewConsumer(stream.ConsumerOptions[*stagesv1.LogRecord]{
			Name: "stages", DB: a.db, Source: s.Stages, Partitions: s.Partitions,
			// A stage change is applied only once the events up to its
			// time are: applied ahead of them, it would rescore the
			// account at a time its events have not reached, and the
			// score, band and signals would depend on which consumer ran
			// ahead (stream.ConsumerOptions.After).
			EventTime: logtime.Stages, After: w.Ingestion,
			Offset: func(r *stagesv1.LogRecord) uint64 { return r.GetOffset() },
			Apply:  a.ApplyStages, Clock: a.clk, Logger: a.logger, Registerer: s.Registerer,
		})
		if err != nil {
			return nil, fmt.Errorf("create stages consumer: %w", err)
		}
		w.Run = append(w.Run, w.Stages.Run)
	}
	w.Run = append(w.Run, a.RunTimers)
	return w, nil
}
