// Package jetlog is a pkg/stream Backend on NATS JetStream: one replicated
// stream per partition, so that a stream sequence is the partition's
// offset and a consumer's cursor (a stream sequence) keeps its
// exactly-once meaning (ADR 0021).
//
// An append is published asynchronously, every record of the batch at
// once, and returns only when the stream's quorum has acknowledged all of
// them. Each message expects the stream's last sequence to be the one
// before it, so a writer that another writer has overtaken is refused
// (stream.ErrFenced), whatever any lease says; and each carries a
// Nats-Msg-Id naming the writer and the offset, so a publish retried after
// a lost acknowledgement is stored once.
package jetlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// HeaderWriter names the writer of a record; a writer that finds records of
// another writer after its own is fenced off.
const HeaderWriter = "Cairn-Writer"

// Options configure Open.
type Options struct {
	// Name names the log; the streams are <Name>-p<NNNNN> on the subjects
	// <Name>.p<NNNNN>. Letters, digits, '-' and '_' only.
	Name string
	// Partitions is the fixed partition count (default 1).
	Partitions uint32
	// Replicas is each stream's replica count (default 3). The servers
	// must run with sync_interval: always for an acknowledgement to mean
	// fsynced on a quorum (ADR 0021).
	Replicas int
	// MaxAge removes records older than this (the stream's max_age); 0
	// keeps them.
	MaxAge time.Duration
	// MaxBytes bounds each partition's stream; a full stream refuses
	// appends (discard new) rather than drop records no consumer may have
	// read. 0 is unbounded.
	MaxBytes int64
	// Duplicates is the stream's duplicate window for Nats-Msg-Id (default
	// 2 minutes): how long a retried publish of the same record is
	// recognised.
	Duplicates time.Duration
	// Writer names this writer in every record's Cairn-Writer header and
	// Nats-Msg-Id (default a random NUID, new at every Open).
	Writer string
	// Timeout bounds each request to the servers (default 10 s).
	Timeout time.Duration
	// OpenTimeout bounds how long Open keeps retrying requests that time
	// out or find JetStream unavailable (default 30 s): a cluster that has
	// just started may still be electing its meta leader, and a process
	// started with it should wait for it rather than exit.
	OpenTimeout time.Duration
	// ReadBatch caps records per Serve send (default 512).
	ReadBatch int
	// Logger receives resync notes (default slog.Default()).
	Logger *slog.Logger
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Log is a partitioned log on JetStream streams.
type Log struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	// kicked is when the log last made its connection move to another
	// server (unix ns), so that a stall reconnects once per Timeout.
	kicked atomic.Int64

	parts []*partition

	serving stream.Serving

	acked     *prometheus.CounterVec
	ackedHead *prometheus.GaugeVec
}

// partition is one partition's stream and this writer's view of it.
type partition struct {
	p       uint32
	name    string
	subject string
	st      jetstream.Stream

	// wmu serialises appends: each batch expects the head the last left.
	wmu sync.Mutex
	// synced is false after an append whose outcome is unknown, until the
	// head is read back from the stream; fenced is set for good once
	// another writer's records are found after ours.
	synced, fenced bool

	mu sync.Mutex
	// wrote is the head this writer knows it stored up to (its own
	// acknowledgements, and the stream's at Open and after a resync); the
	// next append expects it. seen is the newest head observed by readers.
	// They are apart so that a reader seeing another writer's records
	// never lets this writer append after them.
	wrote, seen, first uint64
}

// Open creates or updates the streams of the log on the cluster behind nc
// and takes each partition's head from its stream.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Log, error) {
	if !validName.MatchString(opts.Name) {
		return nil, fmt.Errorf("jetlog: log name %q: want letters, digits, '-' and '_'", opts.Name)
	}
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Duplicates <= 0 {
		opts.Duplicates = 2 * time.Minute
	}
	if opts.Writer == "" {
		opts.Writer = nuid.Next()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 30 * time.Second
	}
	if opts.ReadBatch <= 0 {
		opts.ReadBatch = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*opts.ReadBatch), jetstream.WithPublishAsyncTimeout(opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("jetlog: %w", err)
	}
	l := &Log{
		nc:   nc,
		js:   js,
		opts: opts,
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_log_acked_total",
			Help: "Records of the log the replicated backend acknowledged (quorum), by partition.",
		}, []string{"log", "partition"}),
		ackedHead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_log_acked_offset",
			Help: "Newest offset of the log the replicated backend acknowledged, by partition.",
		}, []string{"log", "partition"}),
	}
	for p := range opts.Partitions {
		pt := &partition{p: p, name: fmt.Sprintf("%s-p%05d", opts.Name, p), subject: fmt.Sprintf("%s.p%05d", opts.Name, p), synced: true}
		cfg := jetstream.StreamConfig{
			Name:        pt.name,
			Subjects:    []string{pt.subject},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    opts.Replicas,
			MaxAge:      opts.MaxAge,
			MaxBytes:    -1,
			Duplicates:  opts.Duplicates,
			Discard:     jetstream.DiscardNew,
			AllowDirect: false, // reads go to the leader: a follower may lag
		}
		if opts.MaxBytes > 0 {
			cfg.MaxBytes = opts.MaxBytes
		}
		deadline := time.Now().Add(opts.OpenTimeout)
		err := untilUp(ctx, deadline, opts.Timeout/4, opts.Logger, "create stream "+pt.name, func() error {
			cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			defer cancel()
			st, err := js.CreateOrUpdateStream(cctx, cfg)
			if err != nil {
				return fmt.Errorf("jetlog: create stream %s: %w", pt.name, err)
			}
			pt.st = st
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := untilUp(ctx, deadline, opts.Timeout/4, opts.Logger, "read stream "+pt.name, func() error { return l.refresh(ctx, pt) }); err != nil {
			return nil, err
		}
		// Opening takes the partition over at its current head: records
		// of an earlier writer are kept, and that writer's next append is
		// refused. (Who may open is phase 2's lease, ADR 0021.)
		pt.wrote = pt.seen
		l.parts = append(l.parts, pt)
	}
	return l, nil
}

// reconnect moves the connection to another server after a read-back of
// a stream went unanswered or was answered by a replica that is not the
// leader. A server cut off from its peers
// still answers the client's pings, so the client would stay with it and
// every append would time out until the network healed, while the other
// servers elected leaders and took writes (reliability's
// TestJetStreamPartition). Moving costs a reconnect when the stall had
// another cause, an election say; it happens at most once per Timeout.
func (l *Log) reconnect(cause error) {
	now := time.Now().UnixNano()
	last := l.kicked.Load()
	if now-last < int64(l.opts.Timeout) || !l.kicked.CompareAndSwap(last, now) {
		return
	}
	l.opts.Logger.Warn("jetlog: no answer through this server; reconnecting to another", "server", l.nc.ConnectedServerName(), "err", cause)
	if err := l.nc.ForceReconnect(); err != nil {
		l.opts.Logger.Warn("jetlog: reconnect", "err", err)
	}
}

// untilUp runs fn until it succeeds, fails in a way a starting cluster
// does not explain (see starting), ctx ends, or deadline passes, pausing
// between attempts.
func untilUp(ctx context.Context, deadline time.Time, pause time.Duration, log *slog.Logger, what string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !starting(err) || ctx.Err() != nil || !time.Now().Before(deadline) {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return err
		}
		log.Info("jetlog: JetStream not ready yet, retrying", "op", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// starting reports whether err is what a JetStream cluster that is still
// forming answers: no answer in time, no responder, or "temporarily
// unavailable" (503) while it elects a meta leader.
func starting(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == 503
	}
	return false
}

// Collectors are the log's metrics, for the process's registry: the
// audit of acknowledged records, cairn_log_acked_total (records the
// quorum acknowledged) and cairn_log_acked_offset (the newest such offset),
// by log and partition.
func (l *Log) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.acked, l.ackedHead}
}

// Name returns the log's name.
func (l *Log) Name() string { return l.opts.Name }

// Partitions returns the partition count.
func (l *Log) Partitions() uint32 { return l.opts.Partitions }

// Writer returns the name this writer stamps on its records.
func (l *Log) Writer() string { return l.opts.Writer }

// Stream returns the name of partition p's stream.
func (l *Log) Stream(p uint32) string {
	if p >= l.opts.Partitions {
		return ""
	}
	return l.parts[p].name
}

func (l *Log) part(p uint32) (*partition, error) {
	if p >= l.opts.Partitions {
		return nil, fmt.Errorf("%w: partition %d (log %q has %d)", stream.ErrNoPartition, p, l.opts.Name, l.opts.Partitions)
	}
	return l.parts[p], nil
}

// Head returns the newest offset of partition p as this process last saw
// it (its own appends, Serve, and the periodic refresh of RunRetention).
func (l *Log) Head(p uint32) uint64 {
	pt, err := l.part(p)
	if err != nil {
		return 0
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return max(pt.wrote, pt.seen)
}

// wroteHead is the head the next append expects.
func (pt *partition) wroteHead() uint64 {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.wrote
}

// First returns the oldest retained offset of partition p as last seen.
func (l *Log) First(p uint32) uint64 {
	pt, err := l.part(p)
	if err != nil {
		return 0
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.first
}

// refresh reads the stream's first and last sequence as a reader.
func (l *Log) refresh(ctx context.Context, pt *partition) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	info, err := pt.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("jetlog: info of stream %s: %w", pt.name, err)
	}
	first, last := bounds(info.State)
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.seen = max(pt.seen, last)
	pt.first = first
	return nil
}

// bounds turns a stream's state into the log's first and head: an empty
// new stream reports first 0, the log says 1.
func bounds(s jetstream.StreamState) (first, last uint64) {
	first, last = s.FirstSeq, s.LastSeq
	if first == 0 {
		first = 1
	}
	if s.Msgs == 0 {
		first = last + 1
	}
	return first, last
}

// setWrote records offsets up to h as stored by this writer.
func (pt *partition) setWrote(h uint64) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.wrote = max(pt.wrote, h)
}

// setSeen records h as observed by a reader.
func (pt *partition) setSeen(h uint64) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.seen = max(pt.seen, h)
}

// Append durably appends data to partition p after its head and returns
// the offset of the first record.
func (l *Log) Append(ctx context.Context, p uint32, data ...[]byte) (uint64, error) {
	pt, err := l.part(p)
	if err != nil {
		return 0, err
	}
	pt.wmu.Lock()
	defer pt.wmu.Unlock()
	if err := l.ready(ctx, pt); err != nil {
		return 0, err
	}
	first := pt.wroteHead() + 1
	if len(data) == 0 {
		return 0, nil
	}
	if err := l.write(ctx, pt, first, data); err != nil {
		return 0, err
	}
	return first, nil
}

// AppendAt appends data to partition p so that data[0] has offset at, and
// returns the offset of the first record it appended. Records at offsets
// this writer's stream already holds (an earlier attempt whose
// acknowledgement was lost, since read back as this writer's) are skipped,
// so a copier may resend from the offset it last knew to be stored. An
// offset beyond head+1 is refused with stream.ErrBeyondHead.
func (l *Log) AppendAt(ctx context.Context, p uint32, at uint64, data ...[]byte) (uint64, error) {
	pt, err := l.part(p)
	if err != nil {
		return 0, err
	}
	pt.wmu.Lock()
	defer pt.wmu.Unlock()
	if err := l.ready(ctx, pt); err != nil {
		return 0, err
	}
	head := pt.wroteHead()
	if at == 0 || at > head+1 {
		return 0, fmt.Errorf("%w: append at %d, head of %s is %d", stream.ErrBeyondHead, at, pt.name, head)
	}
	if skip := head + 1 - at; skip > 0 {
		if skip >= uint64(len(data)) {
			return at, nil
		}
		data = data[skip:]
	}
	if err := l.write(ctx, pt, head+1, data); err != nil {
		return 0, err
	}
	return at, nil
}

// ready refuses a fenced writer and reads the head back after an append
// whose outcome was unknown. pt.wmu is held.
func (l *Log) ready(ctx context.Context, pt *partition) error {
	if pt.fenced {
		return fmt.Errorf("%w (stream %s)", stream.ErrFenced, pt.name)
	}
	if !pt.synced {
		if err := l.resync(ctx, pt); err != nil {
			return err
		}
	}
	return nil
}

// publish sends data as offsets first.. of pt's stream, all at once, and
// waits for every acknowledgement. pt.wmu is held.
func (l *Log) publish(ctx context.Context, pt *partition, first uint64, data [][]byte) error {
	futures := make([]jetstream.PubAckFuture, 0, len(data))
	var sendErr error
	for i, d := range data {
		off := first + uint64(i)
		m := &nats.Msg{Subject: pt.subject, Data: d, Header: nats.Header{}}
		m.Header.Set(HeaderWriter, l.opts.Writer)
		f, err := l.js.PublishMsgAsync(m,
			jetstream.WithMsgID(l.opts.Writer+":"+strconv.FormatUint(off, 10)),
			jetstream.WithExpectLastSequence(off-1),
			jetstream.WithExpectStream(pt.name),
		)
		if err != nil {
			sendErr = err
			break
		}
		futures = append(futures, f)
	}
	var acked uint64 // offsets first..first+acked-1 are known stored
	var firstErr error
	wctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	for i, f := range futures {
		off := first + uint64(i)
		select {
		case ack := <-f.Ok():
			if ack.Sequence != off {
				if firstErr == nil {
					firstErr = fmt.Errorf("jetlog: %s stored offset %d at %d", pt.name, off, ack.Sequence)
				}
				continue
			}
			if firstErr == nil {
				acked++
			}
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = err
			}
		case <-wctx.Done():
			if firstErr == nil {
				firstErr = fmt.Errorf("jetlog: no acknowledgement of offset %d from %s: %w", off, pt.name, wctx.Err())
			}
		}
	}
	if firstErr == nil {
		firstErr = sendErr
	}
	if acked > 0 {
		pt.setWrote(first + acked - 1)
		part := strconv.FormatUint(uint64(pt.p), 10)
		l.acked.WithLabelValues(l.opts.Name, part).Add(float64(acked))
		l.ackedHead.WithLabelValues(l.opts.Name, part).Set(float64(first + acked - 1))
	}
	if firstErr == nil {
		return nil
	}
	// Some messages may have been stored without our hearing of it, or
	// another writer got in first: read the stream back before anything
	// else is appended.
	pt.synced = false
	return fmt.Errorf("jetlog: append offsets %d-%d to %s: %w", first, first+uint64(len(data))-1, pt.name, firstErr)
}

// publishAttempts bounds the tries of one append: a stream leader that is
// being elected answers nothing, and nats.go retries such a message on its
// own, possibly after the next one, which then expects the wrong sequence.
const publishAttempts = 3

// write publishes data as offsets first.., and after a failure reads the
// stream back (resync) and publishes what is not stored yet, up to
// publishAttempts times. Reading back first is what makes the retry safe:
// it continues only after this writer's own records. pt.wmu is held.
func (l *Log) write(ctx context.Context, pt *partition, first uint64, data [][]byte) error {
	for attempt := 1; ; attempt++ {
		err := l.publish(ctx, pt, first, data)
		if err == nil {
			return nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.Timeout)
		rerr := l.resync(rctx, pt)
		cancel()
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		stored := pt.wroteHead() + 1 - first
		if stored >= uint64(len(data)) {
			return nil
		}
		if attempt == publishAttempts || ctx.Err() != nil {
			return err
		}
		first, data = first+stored, data[stored:]
	}
}

// resync reads pt's stream back: records after this writer's head must all
// be its own (stored though their acknowledgement was lost); a record of
// another writer fences this one off for good, and a stream behind the
// head this writer was acknowledged means acknowledged records are gone.
// pt.wmu is held.
func (l *Log) resync(ctx context.Context, pt *partition) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	info, err := pt.st.Info(ctx)
	if err != nil {
		err = fmt.Errorf("jetlog: read back stream %s: %w", pt.name, err)
		if starting(err) {
			l.reconnect(err)
		}
		return err
	}
	// The servers let a member that is not the stream's leader answer
	// with its own state when the stream has no leader, or when the
	// member's group was just created there: a node that lost its disk
	// and came back empty then answers "empty stream". Only the leader's
	// state (LeaderSince is set only in the leader's answer) may say that
	// acknowledged records are gone; otherwise try again later (a
	// transient error: the mirror retries).
	if info.Config.Replicas > 1 && (info.Cluster == nil || info.Cluster.LeaderSince == nil) {
		// A server cut off from its peers answers this way too, for as
		// long as the cut lasts: try another server.
		err := fmt.Errorf("jetlog: read back stream %s: answered by a replica that is not the leader (leader %q), whose state may be behind", pt.name, leaderName(info.Cluster))
		l.reconnect(err)
		return err
	}
	_, last := bounds(info.State)
	head := pt.wroteHead()
	if last < head {
		return fmt.Errorf("%w: stream %s ends at %d but offsets up to %d were acknowledged", stream.ErrDiverged, pt.name, last, head)
	}
	for off := head + 1; off <= last; off++ {
		m, err := pt.st.GetMsg(ctx, off)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("jetlog: read back %s offset %d: %w", pt.name, off, err)
		}
		if w := m.Header.Get(HeaderWriter); w != l.opts.Writer {
			pt.fenced = true
			return fmt.Errorf("%w (stream %s offset %d was written by %q)", stream.ErrFenced, pt.name, off, w)
		}
	}
	if last > head {
		l.opts.Logger.Info("jetlog: records stored without an acknowledgement were read back", "stream", pt.name, "from", head+1, "to", last)
		// Stored on a quorum as surely as acknowledged ones: count them.
		part := strconv.FormatUint(uint64(pt.p), 10)
		l.acked.WithLabelValues(l.opts.Name, part).Add(float64(last - head))
		l.ackedHead.WithLabelValues(l.opts.Name, part).Set(float64(last))
	}
	pt.setWrote(last)
	pt.setSeen(last)
	pt.synced = true
	return nil
}

// Delete removes the record at offset off of partition p (right to be
// forgotten); a record already gone is not an error.
func (l *Log) Delete(ctx context.Context, p uint32, off uint64) error {
	pt, err := l.part(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	if err := pt.st.DeleteMsg(ctx, off); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("jetlog: delete %s offset %d: %w", pt.name, off, err)
	}
	return nil
}

// check reads the stream's bounds and refuses from below the first
// retained offset or beyond head+1; from 0 means the first. It returns the
// resolved from and the head.
func (l *Log) check(pt *partition, from uint64) (uint64, uint64, error) {
	if err := l.refresh(context.Background(), pt); err != nil {
		return 0, 0, err
	}
	first, head := l.First(pt.p), l.Head(pt.p)
	if from == 0 {
		from = first
	}
	if from < first {
		if l.opts.MaxAge <= 0 && l.opts.MaxBytes <= 0 {
			// Without limits nothing ages out: the offsets before the
			// first were deleted one by one (right to be forgotten), and
			// are gaps to skip, as in a bbolt log.
			return first, head, nil
		}
		return 0, 0, fmt.Errorf("%w: from_offset %d, first retained offset is %d", stream.ErrCompacted, from, first)
	}
	if from > head+1 {
		return 0, 0, fmt.Errorf("%w: from_offset %d, head is %d", stream.ErrBeyondHead, from, head)
	}
	return from, head, nil
}

// Read returns up to max records of partition p with offsets >= from,
// skipping deleted ones. It asks the stream leader one record at a time:
// it is for tests and tools; Serve is the way to read in bulk.
func (l *Log) Read(p uint32, from uint64, max int) ([]stream.Record, error) {
	pt, err := l.part(p)
	if err != nil {
		return nil, err
	}
	from, head, err := l.check(pt, from)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = l.opts.ReadBatch
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout)
	defer cancel()
	var out []stream.Record
	for off := from; off <= head && len(out) < max; off++ {
		m, err := pt.st.GetMsg(ctx, off)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("jetlog: read %s offset %d: %w", pt.name, off, err)
		}
		if len(m.Data) == 0 {
			continue // a gap kept by the mirror
		}
		out = append(out, stream.Record{Partition: p, Offset: off, Data: m.Data})
	}
	return out, nil
}

// Serve sends records of partition p from offset from and follows new
// ones through an ordered consumer, which the servers wake as records
// arrive, until ctx ends or send fails. Empty records (gaps the mirror
// kept) are skipped.
func (l *Log) Serve(ctx context.Context, p uint32, from uint64, send func(recs []stream.Record, head uint64) error) error {
	pt, err := l.part(p)
	if err != nil {
		return err
	}
	from, head, err := l.check(pt, from)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sv := l.serving.Track(p, from-1)
	defer sv.Done()
	started := from > head
	if started {
		// Caught up already: the subscriber still learns the head.
		if err := send(nil, head); err != nil {
			return err
		}
	}
	cons, err := pt.st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("jetlog: follow %s from %d: %w", pt.name, from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(l.opts.ReadBatch))
	if err != nil {
		return fmt.Errorf("jetlog: follow %s from %d: %w", pt.name, from, err)
	}
	type next struct {
		m   jetstream.Msg
		err error
	}
	msgs := make(chan next, l.opts.ReadBatch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := it.Next()
			select {
			case msgs <- next{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); it.Stop(); <-done }()
	for {
		var batch []next
		select {
		case n := <-msgs:
			batch = append(batch, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	drain:
		for len(batch) < l.opts.ReadBatch && batch[len(batch)-1].err == nil {
			select {
			case n := <-msgs:
				batch = append(batch, n)
			default:
				break drain
			}
		}
		recs := make([]stream.Record, 0, len(batch))
		var last uint64
		for _, n := range batch {
			if n.err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("jetlog: follow %s: %w", pt.name, n.err)
			}
			md, err := n.m.Metadata()
			if err != nil {
				return fmt.Errorf("jetlog: follow %s: %w", pt.name, err)
			}
			last = md.Sequence.Stream
			pt.setSeen(last + md.NumPending)
			if len(n.m.Data()) == 0 {
				continue
			}
			recs = append(recs, stream.Record{Partition: p, Offset: last, Data: n.m.Data()})
		}
		sv.Sent(last)
		if len(recs) == 0 && started {
			continue
		}
		started = true
		if err := send(recs, l.Head(p)); err != nil {
			return err
		}
	}
}

// SubscriberLag returns the largest head - sent over the Serve calls in
// progress in this process.
func (l *Log) SubscriberLag() uint64 {
	return l.serving.Lag(l.Head)
}

// RunRetention reads every stream's bounds back every interval until ctx
// ends: the servers apply MaxAge and MaxBytes themselves, this keeps First
// and Head current for readers that do not write.
func (l *Log) RunRetention(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, pt := range l.parts {
			if err := l.refresh(ctx, pt); err != nil && ctx.Err() == nil {
				l.opts.Logger.Warn("jetlog: refresh stream bounds", "stream", pt.name, "err", err)
			}
		}
	}
}

var _ stream.Backend = (*Log)(nil)

// leaderName is the leader a stream's info names ("" when none).
func leaderName(c *jetstream.ClusterInfo) string {
	if c == nil {
		return ""
	}
	return c.Leader
}
