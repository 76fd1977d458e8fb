package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/failpoint"
	"github.com/cairn-dev/cairn/pkg/store"
)

// Subscription yields batches of upstream records in offset order, each with
// the upstream head at the time it was read.
type Subscription[T any] interface {
	Recv() (recs []T, head uint64, err error)
}

// Source opens a subscription on one upstream partition starting at from.
type Source[T any] func(ctx context.Context, partition uint32, from uint64) (Subscription[T], error)

// GRPCSource adapts a generated Subscribe client method to a Source.
// unpack extracts the records and head offset from one response.
func GRPCSource[Resp any, T any](
	open func(ctx context.Context, partition uint32, from uint64) (grpc.ServerStreamingClient[Resp], error),
	unpack func(*Resp) ([]T, uint64),
) Source[T] {
	return func(ctx context.Context, partition uint32, from uint64) (Subscription[T], error) {
		s, err := open(ctx, partition, from)
		if err != nil {
			return nil, err
		}
		return &grpcSub[Resp, T]{s: s, unpack: unpack}, nil
	}
}

type grpcSub[Resp any, T any] struct {
	s      grpc.ServerStreamingClient[Resp]
	unpack func(*Resp) ([]T, uint64)
}

func (g *grpcSub[Resp, T]) Recv() ([]T, uint64, error) {
	resp, err := g.s.Recv()
	if err != nil {
		return nil, 0, err
	}
	recs, head := g.unpack(resp)
	return recs, head, nil
}

// LocalSource serves a Log in this process as a Source; tests and the
// single-process suite use it to skip the network.
func LocalSource[T any](l *Log, decode func(Record) (T, error)) Source[T] {
	return func(ctx context.Context, partition uint32, from uint64) (Subscription[T], error) {
		if err := l.checkPartition(partition); err != nil {
			return nil, err
		}
		if from == 0 {
			from = l.First(partition)
		}
		return &localSub[T]{ctx: ctx, l: l, p: partition, from: from, decode: decode}, nil
	}
}

type localSub[T any] struct {
	started bool
	ctx     context.Context
	l       *Log
	p       uint32
	from    uint64
	decode  func(Record) (T, error)
}

func (s *localSub[T]) Recv() ([]T, uint64, error) {
	for {
		wake := s.l.waitChan(s.p)
		recs, head, err := s.l.read(s.p, s.from, 0)
		if err != nil {
			return nil, 0, err
		}
		if len(recs) > 0 {
			out := make([]T, 0, len(recs))
			for _, r := range recs {
				v, err := s.decode(r)
				if err != nil {
					return nil, 0, fmt.Errorf("decode offset %d: %w", r.Offset, err)
				}
				out = append(out, v)
			}
			s.from = recs[len(recs)-1].Offset + 1
			s.started = true
			return out, head, nil
		}
		if s.from <= head {
			s.from = head + 1
		}
		if !s.started {
			// Like Log.Serve: a caught-up subscriber still learns the head.
			s.started = true
			return nil, head, nil
		}
		select {
		case <-wake:
		case <-s.ctx.Done():
			return nil, 0, s.ctx.Err()
		}
	}
}

// Lag is how far a consumer is behind one upstream partition.
type Lag struct {
	Name      string
	Partition uint32
	Cursor    uint64
	Head      uint64
	// Known is set once the upstream has told this consumer the partition's
	// head since it started; before that Head is only what was applied.
	Known bool
}

// CaughtUp reports whether every record the upstream has is applied, as far
// as the consumer knows: never before the upstream has answered.
func (l Lag) CaughtUp() bool { return l.Known && l.Cursor >= l.Head }

// ConsumerOptions configure NewConsumer.
type ConsumerOptions[T any] struct {
	// Name identifies the upstream; it names the cursor, e.g. "ingestion".
	Name string
	// DB is the consumer's own store, where state and cursor live.
	DB *store.DB
	// Source opens upstream subscriptions.
	Source Source[T]
	// Partitions lists the upstream partitions to follow.
	Partitions []uint32
	// Offset returns a record's upstream offset.
	Offset func(T) uint64
	// Apply applies records inside the transaction that also saves the
	// cursor. It must only touch tx: it may be re-run (group commit).
	Apply func(tx *store.Tx, partition uint32, recs []T) error
	// Clock drives reconnect backoff (default the wall clock).
	Clock clock.Clock
	// Logger receives reconnect and apply errors.
	Logger *slog.Logger
	// Registerer, when set, receives cairn_consumer_lag and cairn_consumer_cursor.
	Registerer prometheus.Registerer
	// MinBackoff and MaxBackoff bound reconnect delays (default 50ms, 5s).
	MinBackoff, MaxBackoff time.Duration
	// EventTime, when set, gives a record's event time (zero for records
	// without one). The consumer keeps each partition's watermark, the
	// latest event time applied, for its Horizon; with After it also
	// decides which records are held back.
	EventTime func(T) time.Time
	// After, when set (with EventTime), is the horizon of another log's
	// consumer that this one must not overtake: a record whose event time
	// is after that horizon waits, and the records behind it with it,
	// until the other consumer has applied its upstream up to that time
	// or caught up. Records without an event time never wait.
	After Horizon
	// Linger is how long the transaction applying a small batch (fewer
	// than LingerRecords records) may wait for other writes to the same
	// file to share it (store.CommitLinger). Zero means DefaultLinger with
	// the wall clock and none with an injected Clock; negative, none.
	Linger time.Duration
	// LingerRecords is the batch size that is applied at once (default 512).
	LingerRecords int

	// changed is shared by the Consumers of one upstream (NewConsumers).
	changed *broadcast
}

// Consumer follows upstream partitions and applies their records
// exactly once by committing its cursor with the state change.
type Consumer[T any] struct {
	opts ConsumerOptions[T]

	mu      sync.Mutex
	cursors map[uint32]uint64
	heads   map[uint32]uint64
	known   map[uint32]bool
	// failing holds the last subscription error of a partition, until its
	// upstream is heard again.
	failing map[uint32]error
	// marks are the watermarks by partition (EventTime).
	marks map[uint32]time.Time
	// changed wakes WaitFor and the consumers held behind this one
	// (Horizon.Changed) when a cursor or head moves.
	changed *broadcast

	lag    *prometheus.GaugeVec
	cursor *prometheus.GaugeVec
}

// NewConsumer validates opts and loads the saved cursors.
func NewConsumer[T any](opts ConsumerOptions[T]) (*Consumer[T], error) {
	switch {
	case opts.Name == "":
		return nil, errors.New("consumer: Name is required")
	case opts.DB == nil:
		return nil, errors.New("consumer: DB is required")
	case opts.Source == nil:
		return nil, errors.New("consumer: Source is required")
	case opts.Offset == nil || opts.Apply == nil:
		return nil, errors.New("consumer: Offset and Apply are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 50 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Linger == 0 {
		if _, real := opts.Clock.(clock.Real); real {
			opts.Linger = DefaultLinger
		}
	}
	if opts.LingerRecords <= 0 {
		opts.LingerRecords = 512
	}
	c := &Consumer[T]{
		opts:    opts,
		cursors: make(map[uint32]uint64),
		heads:   make(map[uint32]uint64),
		known:   make(map[uint32]bool),
		failing: make(map[uint32]error),
		marks:   make(map[uint32]time.Time),
		changed: opts.changed,
	}
	if c.changed == nil {
		c.changed = newBroadcast()
	}
	err := opts.DB.View(func(tx *store.Tx) error {
		for _, p := range opts.Partitions {
			v, err := ReadCursor(tx, opts.Name, p)
			if err != nil {
				return err
			}
			c.cursors[p] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load cursors for %q: %w", opts.Name, err)
	}
	if opts.Registerer != nil {
		c.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_consumer_lag", Help: "Upstream records not yet applied.",
			ConstLabels: prometheus.Labels{"consumer": opts.Name},
		}, []string{"partition"})
		c.cursor = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_consumer_cursor", Help: "Last upstream offset applied.",
			ConstLabels: prometheus.Labels{"consumer": opts.Name},
		}, []string{"partition"})
		for _, col := range []prometheus.Collector{c.lag, c.cursor} {
			if err := opts.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("register consumer metrics: %w", err)
			}
		}
		for _, p := range opts.Partitions {
			c.cursor.WithLabelValues(strconv.FormatUint(uint64(p), 10)).Set(float64(c.cursors[p]))
		}
	}
	return c, nil
}

func cursorKey(name string, p uint32) []byte {
	return []byte(name + "/" + strconv.FormatUint(uint64(p), 10))
}

// ReadCursor returns the saved cursor of consumer name on partition p (0 if none).
func ReadCursor(tx *store.Tx, name string, p uint32) (uint64, error) {
	b, err := tx.Bucket("_cursors")
	if err != nil || b == nil {
		return 0, err
	}
	return store.ParseU64(b.Get(cursorKey(name, p))), nil
}

func writeCursor(tx *store.Tx, name string, p uint32, v uint64) error {
	b, err := tx.Bucket("_cursors")
	if err != nil {
		return err
	}
	return b.Put(cursorKey(name, p), store.U64(v))
}

// Cursor returns the last applied offset of partition p.
func (c *Consumer[T]) Cursor(p uint32) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursors[p]
}

// Lag reports the lag of every followed partition.
func (c *Consumer[T]) Lag() []Lag {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Lag, 0, len(c.opts.Partitions))
	for _, p := range c.opts.Partitions {
		out = append(out, Lag{Name: c.opts.Name, Partition: p, Cursor: c.cursors[p], Head: c.heads[p], Known: c.known[p]})
	}
	return out
}

func (c *Consumer[T]) setFailing(p uint32, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing[p] = err
}

// Ready reports whether the consumer can answer truthfully: every followed
// partition has heard its upstream's head since the process started, and
// no subscription is failing. Otherwise it says which upstream and why
// ("ingestion: 8 of 8 partitions unreachable: ..."); the service reports
// NOT_SERVING with that reason (server.Server.Ready). A consumer that is
// catching up on a backlog is ready: it knows how far behind it is.
func (c *Consumer[T]) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var failing, unheard int
	var first error
	for _, p := range c.opts.Partitions {
		switch {
		case c.failing[p] != nil:
			failing++
			if first == nil {
				first = c.failing[p]
			}
		case !c.known[p]:
			unheard++
		}
	}
	n := len(c.opts.Partitions)
	switch {
	case failing > 0:
		return fmt.Errorf("%s: %d of %d partitions unreachable: %w", c.opts.Name, failing, n, first)
	case unheard > 0:
		return fmt.Errorf("%s: %d of %d partitions have not heard the upstream head yet", c.opts.Name, unheard, n)
	}
	return nil
}

// WaitFor blocks until the cursor of p reaches offset or ctx ends.
func (c *Consumer[T]) WaitFor(ctx context.Context, p uint32, offset uint64) error {
	for {
		wake := c.changed.wait() // before the cursor is read: no move is missed
		c.mu.Lock()
		done := c.cursors[p] >= offset
		c.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run follows every partition until ctx ends. It returns nil on cancellation.
func (c *Consumer[T]) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, p := range c.opts.Partitions {
		wg.Add(1)
		go func(p uint32) {
			defer wg.Done()
			c.follow(ctx, p)
		}(p)
	}
	wg.Wait()
	return nil
}

func (c *Consumer[T]) follow(ctx context.Context, p uint32) {
	backoff := c.opts.MinBackoff
	failures := 0
	for ctx.Err() == nil {
		progressed, err := c.session(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = c.opts.MinBackoff
			failures = 0
		}
		failures++
		c.setFailing(p, err)
		// Peers start in any order, so the first few refusals are expected;
		// only a persistent failure deserves a warning.
		level := slog.LevelDebug
		if failures >= 5 {
			level = slog.LevelWarn
		}
		c.opts.Logger.Log(ctx, level, "consumer reconnecting", "consumer", c.opts.Name, "partition", p, "err", err, "backoff", backoff, "attempt", failures)
		select {
		case <-ctx.Done():
			return
		case <-c.opts.Clock.After(backoff):
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// session runs one subscription until it fails; it reports whether any
// record was applied, so that backoff resets after a healthy stretch.
func (c *Consumer[T]) session(ctx context.Context, p uint32) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := c.opts.Source(sctx, p, c.Cursor(p)+1)
	if err != nil {
		return false, fmt.Errorf("subscribe to %s partition %d: %w", c.opts.Name, p, err)
	}
	progressed := false
	// A pump receives ahead while a batch is applied, and the loop below
	// applies everything that has arrived by then as one transaction (up
	// to maxCoalesce records). Under load each upstream commit wakes the
	// subscription with a small batch; applying each in its own
	// transaction cost every consumer a commit and an account load and
	// store per event instead of per account and batch.
	in := make(chan received[T], recvAhead)
	go func() {
		for {
			recs, head, err := sub.Recv()
			select {
			case in <- received[T]{recs: recs, head: head, err: err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var held []T // received, waiting for After's horizon
	var recvErr error
	for {
		if recvErr != nil {
			return progressed, fmt.Errorf("receive from %s partition %d: %w", c.opts.Name, p, recvErr)
		}
		recs := held
		held = nil
		if len(recs) == 0 {
			var m received[T]
			select {
			case m = <-in:
			case <-sctx.Done():
				return progressed, sctx.Err()
			}
			if m.err != nil {
				return progressed, fmt.Errorf("receive from %s partition %d: %w", c.opts.Name, p, m.err)
			}
			c.setHead(p, m.head)
			recs = m.recs
		}
	drain:
		for len(recs) < maxCoalesce {
			select {
			case m := <-in:
				if m.err != nil {
					// Apply what came before it first.
					recvErr = m.err
					break drain
				}
				c.setHead(p, m.head)
				recs = append(recs[:len(recs):len(recs)], m.recs...)
			default:
				break drain
			}
		}
		if len(recs) == 0 {
			continue
		}
		var moved <-chan struct{}
		if recs, held, moved = c.admit(recs); len(recs) == 0 {
			// Nothing may go yet: wait for the other consumer to move.
			select {
			case <-sctx.Done():
				return progressed, sctx.Err()
			case <-moved:
			}
			continue
		}
		// The watermark counts every record received, redelivered ones
		// included: those were applied before, so it overstates nothing,
		// and it is computed once, outside the (possibly rerun) commit.
		var latest time.Time
		if c.opts.EventTime != nil {
			for _, r := range recs {
				if t := c.opts.EventTime(r); t.After(latest) {
					latest = t
				}
			}
		}
		linger := c.opts.Linger
		if len(recs) >= c.opts.LingerRecords {
			linger = 0
		}
		applied, err := store.CommitValueLinger(ctx, c.opts.DB, linger, func(tx *store.Tx) (uint64, error) {
			// Re-read the cursor inside the transaction: redelivered
			// records (at-least-once) are dropped here, atomically.
			cur, err := ReadCursor(tx, c.opts.Name, p)
			if err != nil {
				return 0, err
			}
			fresh := recs[:0:0]
			for _, r := range recs {
				if c.opts.Offset(r) > cur {
					fresh = append(fresh, r)
				}
			}
			if len(fresh) == 0 {
				return cur, nil
			}
			if err := c.opts.Apply(tx, p, fresh); err != nil {
				return 0, err
			}
			last := c.opts.Offset(fresh[len(fresh)-1])
			if err := writeCursor(tx, c.opts.Name, p, last); err != nil {
				return 0, err
			}
			failpoint.CursorBeforeCommit.Hit()
			return last, nil
		})
		if err != nil {
			return progressed, fmt.Errorf("apply %s partition %d: %w", c.opts.Name, p, err)
		}
		failpoint.CursorAfterCommit.Hit()
		progressed = true
		c.advance(p, applied, latest)
	}
}

// DefaultLinger is ConsumerOptions.Linger's default with the wall clock.
//
// Each transaction has a fixed cost in every consumer (its commit writes the
// meta page, spills the pages it touched and fsyncs), and each one appends
// to the consumer's own log, which wakes the consumers downstream. Single
// events at a few hundred per second made most of them a transaction of
// their own in every service of the suite (about 2–3 CPU-ms per event in
// all), since each partition applies on its own and group commit only
// merges writes that happen to overlap. Lingering costs at most this much
// latency per hop.
const DefaultLinger = 10 * time.Millisecond

// recvAhead is how many upstream batches a partition's pump may receive
// ahead of the transaction being applied.
const recvAhead = 16

// maxCoalesce bounds the records applied in one transaction when several
// upstream batches have arrived (each is at most LogOptions.ReadBatch, 512
// by default).
const maxCoalesce = 4096

// received is one upstream batch, or the error that ended the subscription.
type received[T any] struct {
	recs []T
	head uint64
	err  error
}

// admit splits recs into the prefix that may be applied now and the rest,
// which waits for ConsumerOptions.After's horizon; moved is closed when
// that horizon next changes. It is taken before the horizon is read, so a
// wait on it misses no change.
func (c *Consumer[T]) admit(recs []T) (now, later []T, moved <-chan struct{}) {
	if c.opts.After == nil || c.opts.EventTime == nil {
		return recs, nil, nil
	}
	moved = c.opts.After.Changed()
	limit, bounded := c.opts.After.Horizon()
	if !bounded {
		return recs, nil, moved
	}
	n := 0
	for n < len(recs) && !c.opts.EventTime(recs[n]).After(limit) {
		n++
	}
	return recs[:n], recs[n:], moved
}

func (c *Consumer[T]) setHead(p uint32, head uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := !c.known[p] || head > c.heads[p]
	c.known[p] = true
	delete(c.failing, p)
	if head > c.heads[p] {
		c.heads[p] = head
	}
	c.updateGauges(p)
	if changed {
		c.changed.fire()
	}
}

// advance records that partition p is applied up to offset v, with event
// times up to latest.
func (c *Consumer[T]) advance(p uint32, v uint64, latest time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if latest.After(c.marks[p]) {
		c.marks[p] = latest
	}
	c.setCursorLocked(p, v)
}

func (c *Consumer[T]) setCursorLocked(p uint32, v uint64) {
	c.cursors[p] = v
	if v > c.heads[p] {
		c.heads[p] = v
	}
	c.updateGauges(p)
	c.changed.fire()
}

// LagGauge returns the lag gauge of partition p (nil without a Registerer);
// tests use it to check the exported metric.
func (c *Consumer[T]) LagGauge(p uint32) prometheus.Gauge {
	if c.lag == nil {
		return nil
	}
	return c.lag.WithLabelValues(strconv.FormatUint(uint64(p), 10))
}

func (c *Consumer[T]) updateGauges(p uint32) {
	if c.lag == nil {
		return
	}
	label := strconv.FormatUint(uint64(p), 10)
	c.lag.WithLabelValues(label).Set(float64(c.heads[p] - min(c.cursors[p], c.heads[p])))
	c.cursor.WithLabelValues(label).Set(float64(c.cursors[p]))
}
