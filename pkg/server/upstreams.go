package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Upstreams dials the logs a service consumes and keeps the connections, so
// that every service wires its upstreams the same way and closes them once.
// Each method takes a comma-separated address list, one address per
// replica in replica order, as the -<upstream>-addr flags give it.
type Upstreams struct {
	serviceKey string
	conns      []*grpc.ClientConn
}

// NewUpstreams returns an Upstreams that presents serviceKey to its peers.
func NewUpstreams(serviceKey string) *Upstreams { return &Upstreams{serviceKey: serviceKey} }

func (u *Upstreams) dial(name, list string) ([]*grpc.ClientConn, error) {
	cs, err := DialList(list, u.serviceKey)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", name, err)
	}
	u.conns = append(u.conns, cs...)
	return cs, nil
}

// Ingestion returns one source per ingestion replica, in replica order:
// ingestion is split by workspace and every replica writes every partition
// of its own log, so a consumer follows each replica under its own cursor
// (stream.NewConsumers).
func (u *Upstreams) Ingestion(list string) ([]stream.Source[*ingestionv1.LogRecord], error) {
	cs, err := u.dial("ingestion", list)
	if err != nil {
		return nil, err
	}
	sources := make([]stream.Source[*ingestionv1.LogRecord], len(cs))
	for k, c := range cs {
		sources[k] = IngestionSource(c, k, len(cs))
	}
	return sources, nil
}

// Routing returns one source per routing replica, in replica order:
// routing is split by workspace, as ingestion is (see Ingestion).
func (u *Upstreams) Routing(list string) ([]stream.Source[*routingv1.LogRecord], error) {
	cs, err := u.dial("routing", list)
	if err != nil {
		return nil, err
	}
	sources := make([]stream.Source[*routingv1.LogRecord], len(cs))
	for k, c := range cs {
		sources[k] = RoutingSource(c, k, len(cs))
	}
	return sources, nil
}

// Stages returns one source over the stages replicas: stages is split by
// partition, and partition p is read from the replica that owns it.
func (u *Upstreams) Stages(list string) (stream.Source[*stagesv1.LogRecord], error) {
	cs, err := u.dial("stages", list)
	if err != nil {
		return nil, err
	}
	return stream.RouteConns(cs, func(conn *grpc.ClientConn) stream.Source[*stagesv1.LogRecord] {
		c := stagesv1.NewStagesServiceClient(conn)
		return stream.GRPCSource(func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[stagesv1.SubscribeResponse], error) {
			return c.Subscribe(ctx, &stagesv1.SubscribeRequest{Partition: p, FromOffset: from})
		}, func(r *stagesv1.SubscribeResponse) ([]*stagesv1.LogRecord, uint64) {
			return r.GetRecords(), r.GetHeadOffset()
		})
	})
}

// Health returns one source over the health replicas, split by partition
// as Stages is.
func (u *Upstreams) Health(list string) (stream.Source[*healthv1.LogRecord], error) {
	cs, err := u.dial("health", list)
	if err != nil {
		return nil, err
	}
	return stream.RouteConns(cs, func(conn *grpc.ClientConn) stream.Source[*healthv1.LogRecord] {
		c := healthv1.NewHealthServiceClient(conn)
		return stream.GRPCSource(func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[healthv1.SubscribeResponse], error) {
			return c.Subscribe(ctx, &healthv1.SubscribeRequest{Partition: p, FromOffset: from})
		}, func(r *healthv1.SubscribeResponse) ([]*healthv1.LogRecord, uint64) {
			return r.GetRecords(), r.GetHeadOffset()
		})
	})
}

// Close closes every connection made.
func (u *Upstreams) Close() error {
	var errs []error
	for _, c := range u.conns {
		errs = append(errs, c.Close())
	}
	u.conns = nil
	return errors.Join(errs...)
}
