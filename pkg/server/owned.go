package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cairn-dev/cairn/pkg/auth"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// partitioned is a request that names a log partition (SubscribeRequest).
type partitioned interface{ GetPartition() uint32 }

// ownedPartitions refuses a Subscribe on a partition this replica does not
// own. Its log never gets records for such a partition, so a client whose
// address list is in the wrong order or of the wrong length would otherwise
// wait on an empty partition forever, without an error anywhere; refused,
// its consumer retries and warns, naming the replica that owns it.
//
// Every Subscribe also answers with the ReplicaHeader, so that a client
// of a service split by workspace, where every replica serves every
// partition, can tell an address list out of order (see CheckReplica).
func (s *Server) ownedPartitions(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasSuffix(info.FullMethod, "/Subscribe") {
		return handler(srv, ss)
	}
	if err := ss.SendHeader(metadata.Pairs(ReplicaHeader, fmt.Sprintf("%d/%d", s.cfg.Replica, s.cfg.Replicas))); err != nil {
		return err
	}
	if s.cfg.Replicas <= 1 || s.cfg.ByWorkspace {
		return handler(srv, ss)
	}
	return handler(srv, &ownedStream{ServerStream: ss, cfg: s.cfg})
}

// ReplicaHeader is the response header of every Subscribe: "<index>/<replicas>"
// of the replica that answers.
const ReplicaHeader = "cairn-replica"

// CheckReplica checks the ReplicaHeader of a Subscribe stream opened on
// entry index of a service's address list of n entries: it must be replica
// index of n. Every replica of a service split by workspace serves every
// partition, so without it a list out of order would feed replica j's log
// to the consumer (and cursors) of replica k, silently; a list too short
// would silently miss a replica's workspaces. A response without the header
// (an older server, a test fake) passes.
func CheckReplica(md metadata.MD, service string, index, n int) error {
	got := md.Get(ReplicaHeader)
	if want := fmt.Sprintf("%d/%d", index, n); len(got) > 0 && got[0] != want {
		return status.Errorf(codes.FailedPrecondition,
			"%s address list: entry %d is replica %s, want %s: list every replica, in replica order", service, index, got[0], want)
	}
	return nil
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

// ownedWorkspace refuses a unary call on a workspace this replica of a
// service split by workspace does not own. The workspace is the request's
// "workspace" field, else the caller key's (auth.Workspace). Calls whose
// workspace cannot be resolved go on to the handler, which reports that
// with its own error; requests without a workspace field (health checks)
// are not checked.
func (s *Server) ownedWorkspace(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.cfg.ByWorkspace || s.cfg.Replicas <= 1 {
		return handler(ctx, req)
	}
	m, ok := req.(proto.Message)
	if !ok {
		return handler(ctx, req)
	}
	f := m.ProtoReflect().Descriptor().Fields().ByName("workspace")
	if f == nil || f.Kind() != protoreflect.StringKind || f.IsList() {
		return handler(ctx, req)
	}
	ws, err := auth.Workspace(ctx, m.ProtoReflect().Get(f).String())
	if err != nil {
		return handler(ctx, req)
	}
	if err := s.cfg.CheckWorkspace(ws); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}
