package stream

import (
	"context"
	"time"
)

// Backend is what a producer needs from the log it writes and serves:
// append a batch durably, the offsets a partition holds, reading and
// serving from an offset, and retention. Offsets start at 1 in each
// partition and are never reused.
//
// *Log (records in the producer's own bbolt file) is one implementation;
// pkg/stream/jetlog (a replicated NATS JetStream stream per partition,
// ADR 0021) is the other. The same conformance suite
// (pkg/stream/conformance) runs against both.
type Backend interface {
	// Name names the log.
	Name() string
	// Partitions is the fixed partition count.
	Partitions() uint32
	// Head is the newest offset of partition p (0 when empty).
	Head(p uint32) uint64
	// First is the oldest offset of partition p that retention kept.
	First(p uint32) uint64
	// Append appends data to partition p, in order, and returns once they
	// are durable, with the offset of the first.
	Append(ctx context.Context, p uint32, data ...[]byte) (uint64, error)
	// Read returns up to max records of partition p with offsets >= from
	// (0: the oldest retained), or ErrCompacted / ErrBeyondHead.
	Read(p uint32, from uint64, max int) ([]Record, error)
	// Serve sends records of partition p from offset from, then follows new
	// appends, until ctx ends or send fails. The first send comes at once,
	// empty if there is nothing to send, so the subscriber learns the head.
	Serve(ctx context.Context, p uint32, from uint64, send func(recs []Record, head uint64) error) error
	// SubscriberLag is the largest head - sent over the Serve calls in
	// progress.
	SubscriberLag() uint64
	// RunRetention applies the retention limits every interval until ctx
	// ends (a backend whose store enforces them itself just waits).
	RunRetention(ctx context.Context, interval time.Duration) error
}

var _ Backend = (*Log)(nil)
