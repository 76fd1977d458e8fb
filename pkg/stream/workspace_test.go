package stream_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestWorkspaceReplica pins the hash: it decides which ingestion and
// routing replica holds a workspace's data, so changing it would move
// workspaces on every scaled install.
func TestWorkspaceReplica(t *testing.T) {
	tests := []struct {
		workspace string
		replicas  int
		want      int
	}{
		{"acme", 0, 0},
		{"acme", 1, 0},
		{"acme", 2, 1},
		{"globex", 2, 1},
		{"rel-ws", 2, 0},
		{"acme", 3, 2},
		{"globex", 3, 1},
		{"", 4, 3},
	}
	for _, tc := range tests {
		if got := stream.WorkspaceReplica(tc.workspace, tc.replicas); got != tc.want {
			t.Errorf("WorkspaceReplica(%q, %d) = %d, want %d", tc.workspace, tc.replicas, got, tc.want)
		}
	}
	// Every replica gets a fair share of workspaces (within 30% of even),
	// and only replicas in range, also for short names that differ in one
	// letter (which FNV-1a alone, mod 2, splits by the parity of bytes).
	for replicas := 1; replicas <= 8; replicas++ {
		seen := make([]int, replicas)
		const n = 800
		for i := range n {
			seen[stream.WorkspaceReplica("ws-"+strconv.Itoa(i), replicas)]++
		}
		for k, c := range seen {
			if even := n / replicas; c < even*7/10 || c > even*13/10 {
				t.Errorf("replicas=%d: replica %d owns %d of %d workspaces: %v", replicas, k, c, n, seen)
			}
		}
	}
	var odd int
	for c := 'a'; c <= 'z'; c++ {
		odd += stream.WorkspaceReplica(string(c)+"-ws", 2)
	}
	if odd == 0 || odd == 26 {
		t.Errorf("one-letter names all on one replica of 2 (%d on replica 1)", odd)
	}
}

func TestWorkspaceOn(t *testing.T) {
	for _, tc := range []struct {
		k, replicas int
		want        string
	}{
		{k: 0, replicas: 1, want: "ws-0"},
		{k: 0, replicas: 0, want: "ws-0"},
		{k: 1, replicas: 1, want: ""},
		{k: -1, replicas: 3, want: ""},
		{k: 3, replicas: 3, want: ""},
	} {
		if got := stream.WorkspaceOn("ws-", tc.k, tc.replicas); got != tc.want {
			t.Errorf("WorkspaceOn(ws-, %d, %d) = %q, want %q", tc.k, tc.replicas, got, tc.want)
		}
	}
	for replicas := 2; replicas <= 5; replicas++ {
		for k := range replicas {
			ws := stream.WorkspaceOn("ws-", k, replicas)
			if ws == "" || stream.WorkspaceReplica(ws, replicas) != k {
				t.Errorf("WorkspaceOn(ws-, %d, %d) = %q, owned by replica %d", k, replicas, ws, stream.WorkspaceReplica(ws, replicas))
			}
		}
	}
}

func TestReplicaName(t *testing.T) {
	for k, want := range []string{"ingestion", "ingestion-1", "ingestion-2"} {
		if got := stream.ReplicaName("ingestion", k); got != want {
			t.Errorf("ReplicaName(ingestion, %d) = %q, want %q", k, got, want)
		}
	}
}

// TestConsumers follows two upstream logs (two replicas of a service split
// by workspace) into one store: each replica's records are applied once,
// under its own cursors, and Lag and CaughtUp cover both.
func TestConsumers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs [2]*stream.Log
	var sources []stream.Source[stream.Record]
	for k := range logs {
		_, logs[k] = openLog(t, stream.LogOptions{})
		sources = append(sources, stream.LocalSource(logs[k], decodeString))
	}
	down := storetest.Open(t)
	reg := prometheus.NewRegistry()
	var appliedBy [2]int
	cs, err := stream.NewConsumers(stream.ConsumerOptions[stream.Record]{
		Name: "up", DB: down, Partitions: []uint32{0}, Registerer: reg,
		Offset:     func(r stream.Record) uint64 { return r.Offset },
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}, sources, func(k int) func(*store.Tx, uint32, []stream.Record) error {
		return func(tx *store.Tx, p uint32, recs []stream.Record) error {
			appliedBy[k] += len(recs)
			return applyRecords(tx, p, recs)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs.CaughtUp() {
		t.Fatal("caught up before any upstream answered")
	}
	for k, n := range []int{3, 5} {
		for i := range n {
			if _, err := logs[k].Append(ctx, 0, []byte("r"+strconv.Itoa(k)+"-"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- cs.Run(ctx) }()
	for k, want := range []uint64{3, 5} {
		if err := cs[k].WaitFor(ctx, 0, want); err != nil {
			t.Fatal(err)
		}
	}
	// The head is learnt with the batch that reaches it.
	if !cs.CaughtUp() {
		t.Errorf("not caught up after applying every record: %+v", cs.Lag())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(applied(t, down)); got != 8 {
		t.Errorf("applied %d records, want 8", got)
	}
	names := map[string]uint64{}
	for _, l := range cs.Lag() {
		names[l.Name] = l.Cursor
	}
	if len(names) != 2 || names["up"] != 3 || names["up-1"] != 5 {
		t.Errorf("lag cursors by consumer = %v, want up:3 up-1:5", names)
	}
	if n := testutil.CollectAndCount(reg, "cairn_consumer_cursor"); n != 2 {
		t.Errorf("cairn_consumer_cursor has %d series, want one per replica", n)
	}
	if _, err := stream.NewConsumers(stream.ConsumerOptions[stream.Record]{}, nil, nil); err == nil {
		t.Error("NewConsumers without sources succeeded")
	}
}
