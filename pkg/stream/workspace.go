package stream

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/pkg/store"
	"golang.org/x/sync/errgroup"
)

// WorkspaceReplica returns the replica, out of replicas, that owns the
// workspace in a service split by workspace (ingestion, routing): FNV-1a
// (64 bits) of the workspace name, mixed by the SplitMix64 finaliser, mod
// replicas. It is the one rule for both the replicas (which workspaces to
// accept or keep) and their clients (the gateway, the CLI), so they agree.
// The finaliser matters: FNV-1a's low bits depend on few input bits (mod 2
// it is the parity of the bytes' low bits), and the modulus reads exactly
// those. It is stable across processes and releases: changing it moves
// workspaces between replicas. replicas < 2 means a single replica, 0.
func WorkspaceReplica(workspace string, replicas int) int {
	if replicas < 2 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(workspace))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return int(x % uint64(replicas))
}

// ReplicaName names the consumer of replica k of an upstream split by
// workspace: base itself for replica 0 and base-k for the others. Replica 0
// keeping the plain name means a single upstream replica (every install
// before the split) keeps its cursors, and so does replica 0's log when
// replicas are added.
func ReplicaName(base string, k int) string {
	if k == 0 {
		return base
	}
	return base + "-" + strconv.Itoa(k)
}

// Consumers are the consumers of one upstream split by workspace, one per
// upstream replica in replica order: each replica has its own log, with
// its own offsets, so each needs its own cursors.
type Consumers[T any] []*Consumer[T]

// NewConsumers builds one Consumer per source, in replica order: sources[k]
// is upstream replica k, consumed under ReplicaName(opts.Name, k). apply,
// when not nil, gives replica k's Apply instead of opts.Apply (e.g. to skip
// records or tell replicas apart).
func NewConsumers[T any](opts ConsumerOptions[T], sources []Source[T], apply func(k int) func(*store.Tx, uint32, []T) error) (Consumers[T], error) {
	if len(sources) == 0 {
		return nil, errors.New("consumers: no sources")
	}
	out := make(Consumers[T], 0, len(sources))
	opts.changed = newBroadcast() // one Horizon.Changed for all
	for k, src := range sources {
		o := opts
		o.Name, o.Source = ReplicaName(opts.Name, k), src
		if apply != nil {
			o.Apply = apply(k)
		}
		c, err := NewConsumer(o)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Ready is every consumer's Ready, on one line.
func (cs Consumers[T]) Ready() error {
	errs := make([]error, 0, len(cs))
	for _, c := range cs {
		errs = append(errs, c.Ready())
	}
	return JoinReady(errs...)
}

// JoinReady joins readiness errors on one line, "a; b", skipping nils; nil
// when all are nil. A reason is read in a log line or a /readyz answer, so
// it stays on one line (errors.Join would put each on its own).
func JoinReady(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Run runs every consumer until ctx ends or one fails.
func (cs Consumers[T]) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range cs {
		g.Go(func() error { return c.Run(gctx) })
	}
	return g.Wait()
}

// Lag reports every consumer's lag on every partition, replica 0's first.
// Each Lag's Name tells the replicas apart.
func (cs Consumers[T]) Lag() []Lag {
	var out []Lag
	for _, c := range cs {
		out = append(out, c.Lag()...)
	}
	return out
}

// CaughtUp reports whether every consumer has applied every record its
// upstream replica has, on every partition.
func (cs Consumers[T]) CaughtUp() bool {
	for _, l := range cs.Lag() {
		if !l.CaughtUp() {
			return false
		}
	}
	return true
}

// WorkspaceOn returns the first of prefix+"0", prefix+"1", ... that replica
// k of replicas owns (WorkspaceReplica), for tests and tools that need a
// workspace on a given replica. It returns "" when no replica k exists.
func WorkspaceOn(prefix string, k, replicas int) string {
	if k < 0 || k >= max(replicas, 1) {
		return ""
	}
	for i := 0; ; i++ {
		if ws := prefix + strconv.Itoa(i); WorkspaceReplica(ws, replicas) == k {
			return ws
		}
	}
}
