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

// IngestionSources dials the ingestion replicas of a comma-separated list
// (one address per replica, in replica order: replica k owns the workspaces
// with stream.WorkspaceReplica(w, len) == k) and returns one Source per
// replica, in that order, for stream.NewConsumers, and the connections to
// close. Every replica writes every partition of its own log, so a
// consumer follows each replica separately; a one-address list is the
// single ingestion of an unscaled install.
func IngestionSources(list, serviceKey string) ([]stream.Source[*ingestionv1.LogRecord], []*grpc.ClientConn, error) {
	conns, err := DialList(list, serviceKey)
	if err != nil {
		return nil, nil, err
	}
	sources := make([]stream.Source[*ingestionv1.LogRecord], len(conns))
	for k, c := range conns {
		sources[k] = IngestionSource(c, k, len(conns))
	}
	return sources, conns, nil
}
