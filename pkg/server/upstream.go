package server

import (
	"context"

	"google.golang.org/grpc"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// IngestionSource reads the ingestion log of replica index of replicas;
// a subscription on another replica (ReplicaHeader) fails with
// FailedPrecondition, so the consumer retries and warns instead of mixing
// two replicas' offsets.
func IngestionSource(conn grpc.ClientConnInterface, index, replicas int) stream.Source[*ingestionv1.LogRecord] {
	c := ingestionv1.NewIngestionServiceClient(conn)
	return stream.GRPCSource(
		func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[ingestionv1.SubscribeResponse], error) {
			sub, err := c.Subscribe(ctx, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: from})
			if err != nil {
				return nil, err
			}
			md, err := sub.Header()
			if err != nil {
				return nil, err
			}
			if err := CheckReplica(md, "ingestion", index, replicas); err != nil {
				return nil, err
			}
			return sub, nil
		},
		func(r *ingestionv1.SubscribeResponse) ([]*ingestionv1.LogRecord, uint64) {
			return r.GetRecords(), r.GetHeadOffset()
		})
}
