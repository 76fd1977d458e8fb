package stream

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"
)

func TestOwned(t *testing.T) {
	tests := []struct {
		name            string
		index, replicas int
		n               uint32
		want            []uint32
	}{
		{name: "single replica owns all", index: 0, replicas: 1, n: 4, want: []uint32{0, 1, 2, 3}},
		{name: "zero replicas means one", index: 0, replicas: 0, n: 3, want: []uint32{0, 1, 2}},
		{name: "first of two", index: 0, replicas: 2, n: 8, want: []uint32{0, 2, 4, 6}},
		{name: "second of two", index: 1, replicas: 2, n: 8, want: []uint32{1, 3, 5, 7}},
		{name: "uneven split", index: 2, replicas: 3, n: 8, want: []uint32{2, 5}},
		{name: "as many replicas as partitions", index: 3, replicas: 4, n: 4, want: []uint32{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Owned(tc.index, tc.replicas, tc.n); !slices.Equal(got, tc.want) {
				t.Fatalf("Owned(%d, %d, %d) = %v, want %v", tc.index, tc.replicas, tc.n, got, tc.want)
			}
		})
	}
}

// TestOwnedCoversEveryPartitionOnce checks that the replicas of a set
// partition the partitions: every one owned by exactly one replica.
func TestOwnedCoversEveryPartitionOnce(t *testing.T) {
	const n = 64
	for replicas := 1; replicas <= 8; replicas++ {
		seen := map[uint32]int{}
		for i := range replicas {
			for _, p := range Owned(i, replicas, n) {
				seen[p]++
				if Replica(p, replicas) != i {
					t.Fatalf("replicas=%d: partition %d listed for %d, Replica says %d", replicas, p, i, Replica(p, replicas))
				}
			}
		}
		for p := range uint32(n) {
			if seen[p] != 1 {
				t.Fatalf("replicas=%d: partition %d owned %d times", replicas, p, seen[p])
			}
		}
	}
}

func TestAccountReplica(t *testing.T) {
	const n = 8
	for _, acct := range []string{"acme", "globex", "initech", "umbrella"} {
		p := Partition("ws", acct, n)
		if got, want := AccountReplica("ws", acct, n, 2), int(p%2); got != want {
			t.Errorf("AccountReplica(%s) = %d, want %d (partition %d)", acct, got, want, p)
		}
	}
}

// fixedSub is a subscription that yields one empty batch with head set to
// the id of the replica that served it.
type fixedSub struct{ head uint64 }

func (s fixedSub) Recv() ([]int, uint64, error) { return nil, s.head, nil }

func TestRoute(t *testing.T) {
	if _, err := Route[int](nil); err == nil {
		t.Fatal("Route(nil) succeeded")
	}
	if _, err := Route([]Source[int]{nil, nil}); err == nil {
		t.Fatal("Route with nil sources succeeded")
	}
	src := func(id uint64) Source[int] {
		return func(context.Context, uint32, uint64) (Subscription[int], error) { return fixedSub{head: id}, nil }
	}
	for _, replicas := range []int{1, 2, 3} {
		sources := make([]Source[int], replicas)
		for i := range sources {
			sources[i] = src(uint64(i))
		}
		r, err := Route(sources)
		if err != nil {
			t.Fatal(err)
		}
		for p := range uint32(8) {
			sub, err := r(t.Context(), p, 1)
			if err != nil {
				t.Fatal(err)
			}
			_, head, _ := sub.Recv()
			if want := uint64(Replica(p, replicas)); head != want {
				t.Errorf("replicas=%d partition %d served by %d, want %d", replicas, p, head, want)
			}
		}
	}
}

// TestRouteConns checks that the Source built from the i-th connection
// serves the partitions replica i owns.
func TestRouteConns(t *testing.T) {
	conns := []*grpc.ClientConn{new(grpc.ClientConn), new(grpc.ClientConn), new(grpc.ClientConn)}
	r, err := RouteConns(conns, func(c *grpc.ClientConn) Source[int] {
		id := uint64(slices.Index(conns, c))
		return func(context.Context, uint32, uint64) (Subscription[int], error) { return fixedSub{head: id}, nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range uint32(8) {
		sub, err := r(t.Context(), p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, head, _ := sub.Recv(); head != uint64(Replica(p, len(conns))) {
			t.Errorf("partition %d served by connection %d, want %d", p, head, Replica(p, len(conns)))
		}
	}
	if _, err := RouteConns[int](nil, nil); err == nil {
		t.Error("RouteConns without connections succeeded")
	}
}
