package server

import (
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// partitioned is a request that names a log partition (SubscribeRequest).
type partitioned interface{ GetPartition() uint32 }

// ownedPartitions refuses a Subscribe on a partition this replica does not
// own. Its log never gets records for such a partition, so a client whose
// address list is in the wrong order or of the wrong length would otherwise
// wait on an empty partition forever, without an error anywhere; refused,
// its consumer retries and warns, naming the replica that owns it.
func (s *Server) ownedPartitions(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if s.cfg.Replicas <= 1 || !strings.HasSuffix(info.FullMethod, "/Subscribe") {
		return handler(srv, ss)
	}
	return handler(srv, &ownedStream{ServerStream: ss, cfg: s.cfg})
}

// ownedStream checks the partition of each received request.
type ownedStream struct {
	grpc.ServerStream
	cfg Config
}

func (o *ownedStream) RecvMsg(m any) error {
	if err := o.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(partitioned)
	if !ok {
		return nil
	}
	// Partitions out of range are left to the handler, which names them.
	if p := req.GetPartition(); p < o.cfg.Partitions && !o.cfg.Owns(p) {
		return status.Errorf(codes.FailedPrecondition,
			"partition: %d belongs to replica %d of %d, not to this replica %d; check the order and length of the client's address list",
			p, stream.Replica(p, o.cfg.Replicas), o.cfg.Replicas, o.cfg.Replica)
	}
	return nil
}
