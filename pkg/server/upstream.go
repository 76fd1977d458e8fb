package server

import (
	"context"

	"google.golang.org/grpc"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// IngestionSource reads the ingestion log of replica index of replicas;
// a subscription on another replica (ReplicaHeader) fails with
// FailedPrecondition, so the consumer retries and warns instead of mixing
// two replicas' offsets.
func IngestionSource(conn grpc.ClientConnInterface, index, replicas int) stream.Source[*ingestionv1.LogRecord] {
	c := ingestionv1.NewIngestionServiceClient(conn)
	return stream.GRPCSource(
		checked("ingestion", index, replicas, func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[ingestionv1.SubscribeResponse], error) {
			return c.Subscribe(ctx, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: from})
		}),
		func(r *ingestionv1.SubscribeResponse) ([]*ingestionv1.LogRecord, uint64) {
			return r.GetRecords(), r.GetHeadOffset()
		})
}

// RoutingSource reads the routing log of replica index of replicas. Routing
// is split by workspace like ingestion: every replica writes every
// partition of its own log, checked the same way.
func RoutingSource(conn grpc.ClientConnInterface, index, replicas int) stream.Source[*routingv1.LogRecord] {
	c := routingv1.NewRoutingServiceClient(conn)
	return stream.GRPCSource(
		checked("routing", index, replicas, func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[routingv1.SubscribeResponse], error) {
			return c.Subscribe(ctx, &routingv1.SubscribeRequest{Partition: p, FromOffset: from})
		}),
		func(r *routingv1.SubscribeResponse) ([]*routingv1.LogRecord, uint64) {
			return r.GetRecords(), r.GetHeadOffset()
		})
}

// checked wraps open so that a stream from the wrong replica is refused
// (CheckReplica) before any record is read.
func checked[R any](service string, index, replicas int, open func(context.Context, uint32, uint64) (grpc.ServerStreamingClient[R], error)) func(context.Context, uint32, uint64) (grpc.ServerStreamingClient[R], error) {
	return func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[R], error) {
		sub, err := open(ctx, p, from)
		if err != nil {
			return nil, err
		}
		md, err := sub.Header()
		if err != nil {
			return nil, err
		}
		if err := CheckReplica(md, service, index, replicas); err != nil {
			return nil, err
		}
		return sub, nil
	}
}
