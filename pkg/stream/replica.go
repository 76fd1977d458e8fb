package stream

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
)

// Replica returns the index of the replica, out of replicas, that owns
// partition p: p % replicas. It is the one ownership rule, shared by the
// replicas (which partitions to consume) and their clients (where to send
// a partition's subscription or an account's request), so both agree.
// replicas < 2 means a single replica, 0.
func Replica(p uint32, replicas int) int {
	if replicas < 2 {
		return 0
	}
	return int(p % uint32(replicas))
}

// Owned lists, in order, the partitions out of n that replica index owns
// among replicas; a single replica owns all of them.
func Owned(index, replicas int, n uint32) []uint32 {
	out := make([]uint32, 0, n)
	for p := range n {
		if Replica(p, replicas) == index {
			out = append(out, p)
		}
	}
	return out
}

// AccountReplica returns the replica, out of replicas, that owns the
// account's partition when the log has n partitions.
func AccountReplica(workspace, account string, n uint32, replicas int) int {
	return Replica(Partition(workspace, account, n), replicas)
}

// Route serves each partition from the Source of the replica that owns it:
// partition p comes from sources[Replica(p, len(sources))]. sources is in
// replica order (the order of the upstream address list). One Source is
// returned as is.
func Route[T any](sources []Source[T]) (Source[T], error) {
	switch len(sources) {
	case 0:
		return nil, errors.New("route: no sources")
	case 1:
		return sources[0], nil
	}
	for i, s := range sources {
		if s == nil {
			return nil, fmt.Errorf("route: source %d is nil", i)
		}
	}
	return func(ctx context.Context, partition uint32, from uint64) (Subscription[T], error) {
		return sources[Replica(partition, len(sources))](ctx, partition, from)
	}, nil
}

// RouteConns builds one Source per replica connection with source and routes
// each partition to its owner (Route). conns is in replica order, as
// server.DialList returns them.
func RouteConns[T any](conns []*grpc.ClientConn, source func(*grpc.ClientConn) Source[T]) (Source[T], error) {
	sources := make([]Source[T], len(conns))
	for i, c := range conns {
		sources[i] = source(c)
	}
	return Route(sources)
}
