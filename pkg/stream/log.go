// Package stream implements the pattern every Cairn service uses to move
// data: an append-only log per partition inside the producer's bbolt file,
// served live as a gRPC server stream, and a consumer that applies records
// and saves its cursor in the same bbolt transaction as the state change.
//
// Delivery is at-least-once; because the cursor commits atomically with the
// state it describes, application is exactly-once.
package stream

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/failpoint"
	"github.com/cairn-dev/cairn/pkg/store"
)

// Record is one entry of a log. Offsets start at 1 in each partition.
type Record struct {
	Partition uint32
	Offset    uint64
	Data      []byte
}

var (
	// ErrCompacted means the requested offset was removed by retention.
	ErrCompacted = apierr.OutOfRange("offset is older than the log's retention")
	// ErrBeyondHead means the requested offset has not been written yet
	// (more than one past the head), which usually means the consumer's
	// cursor belongs to another log.
	ErrBeyondHead = apierr.OutOfRange("offset is beyond the head of the log")
	// ErrNoPartition means the partition does not exist.
	ErrNoPartition = apierr.Invalid("no such partition")
)

// Partition maps (workspace, account) to one of n partitions with FNV-1a.
// It is the one place partitioning is decided, so replicas and clients agree.
func Partition(workspace, account string, n uint32) uint32 {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(workspace))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(account))
	return h.Sum32() % n
}

// LogOptions configure OpenLog.
type LogOptions struct {
	// Partitions is the fixed partition count (default 1).
	Partitions uint32
	// Retention removes records older than this; 0 keeps them forever.
	Retention time.Duration
	// Clock stamps records for retention (default the wall clock).
	Clock clock.Clock
	// ReadBatch caps records per Serve send (default 512).
	ReadBatch int
	// ServeLinger is how long Serve, once caught up and woken by an
	// append, waits for more appends before reading and sending (0: not
	// at all). Each send is a write to every subscriber's connection and
	// a transaction in every consumer; with a trickle of small commits
	// (single events), lingering a few milliseconds sends several commits
	// as one. It adds at most that much to the time a record takes to
	// reach a subscriber, and nothing while a subscriber is behind.
	ServeLinger time.Duration
}

// Log is an append-only, partitioned log stored in one bbolt file.
type Log struct {
	db   *store.DB
	name string
	opts LogOptions

	mu    sync.Mutex
	heads []uint64
	first []uint64
	wake  []chan struct{}
	// serving tracks each Serve in progress (SubscriberLag).
	serving Serving

	// w caches the current write transaction's buckets and heads, so that
	// appending many records in one transaction resolves the nested buckets
	// once per partition and wakes subscribers once per partition. Only
	// write transactions touch it, and bbolt runs one at a time.
	w *txState
}

// SubscriberLag returns how many records the furthest-behind subscription
// being served has not been given yet: the largest head - sent over the
// Serve calls in progress (a batch counts once handed to send), 0 when
// there are none. A subscriber applies what
// it was sent a little later (a few batches are in flight), so this is a
// lower bound of its lag; a consumer that is not subscribed (down) is not
// counted. Ingestion sheds writes when it exceeds the lag budget.
func (l *Log) SubscriberLag() uint64 {
	return l.serving.Lag(l.Head)
}

// txState is one write transaction's view of the log.
type txState struct {
	tx         *bbolt.Tx
	meta, recs []*bbolt.Bucket // by partition; nil until first used
	head       []uint64        // by partition, valid where meta is set
}

var (
	keyHead  = []byte("head")
	keyFirst = []byte("first")
)

// OpenLog opens (creating if needed) the log called name in db.
func OpenLog(db *store.DB, name string, opts LogOptions) (*Log, error) {
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.ReadBatch <= 0 {
		opts.ReadBatch = 512
	}
	l := &Log{
		db:    db,
		name:  name,
		opts:  opts,
		heads: make([]uint64, opts.Partitions),
		first: make([]uint64, opts.Partitions),
		wake:  make([]chan struct{}, opts.Partitions),
	}
	err := db.Update(func(tx *store.Tx) error {
		for p := uint32(0); p < opts.Partitions; p++ {
			meta, _, err := l.buckets(tx, p)
			if err != nil {
				return err
			}
			l.heads[p] = store.ParseU64(meta.Get(keyHead))
			l.first[p] = store.ParseU64(meta.Get(keyFirst))
			if l.first[p] == 0 {
				l.first[p] = 1
				if err := meta.Put(keyFirst, store.U64(1)); err != nil {
					return err
				}
			}
			l.wake[p] = make(chan struct{})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open log %q: %w", name, err)
	}
	return l, nil
}

// Partitions returns the partition count.
func (l *Log) Partitions() uint32 { return l.opts.Partitions }

// Name returns the log's name.
func (l *Log) Name() string { return l.name }

func (l *Log) buckets(tx *store.Tx, p uint32) (meta, recs *bbolt.Bucket, err error) {
	pb, err := tx.Bucket("log", l.name, fmt.Sprintf("p%05d", p))
	if err != nil || pb == nil {
		return nil, nil, err
	}
	if tx.Writable() {
		if meta, err = pb.CreateBucketIfNotExists([]byte("meta")); err != nil {
			return nil, nil, err
		}
		if recs, err = pb.CreateBucketIfNotExists([]byte("records")); err != nil {
			return nil, nil, err
		}
		// Offsets only grow, so pages can be packed full instead of split in half.
		recs.FillPercent = 1.0
		return meta, recs, nil
	}
	return pb.Bucket([]byte("meta")), pb.Bucket([]byte("records")), nil
}

func (l *Log) checkPartition(p uint32) error {
	if p >= l.opts.Partitions {
		return fmt.Errorf("%w: partition %d (log %q has %d)", ErrNoPartition, p, l.name, l.opts.Partitions)
	}
	return nil
}

// Head returns the newest offset of partition p (0 when empty).
func (l *Log) Head(p uint32) uint64 {
	if p >= l.opts.Partitions {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heads[p]
}

// First returns the oldest retained offset of partition p.
func (l *Log) First(p uint32) uint64 {
	if p >= l.opts.Partitions {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first[p]
}

// state returns tx's cached buckets of partition p, resolving them on first
// use. The first use in a transaction registers one commit hook that wakes
// the subscribers of every partition appended to.
func (l *Log) state(tx *store.Tx, p uint32) (*txState, error) {
	st := l.w
	if st == nil || st.tx != tx.Bolt() {
		n := l.opts.Partitions
		st = &txState{tx: tx.Bolt(), meta: make([]*bbolt.Bucket, n), recs: make([]*bbolt.Bucket, n), head: make([]uint64, n)}
		l.w = st
		tx.OnCommit(func() {
			failpoint.AppendAfterCommit.Hit()
			for p, m := range st.meta {
				if m != nil {
					l.advance(uint32(p), st.head[p])
				}
			}
		})
	}
	if st.meta[p] == nil {
		meta, recs, err := l.buckets(tx, p)
		if err != nil {
			return nil, err
		}
		st.meta[p], st.recs[p], st.head[p] = meta, recs, store.ParseU64(meta.Get(keyHead))
	}
	return st, nil
}

// AppendTx appends data to partition p inside the caller's write transaction,
// so that an output record commits together with the state that produced it.
// Subscribers are woken when the transaction commits.
func (l *Log) AppendTx(tx *store.Tx, p uint32, data []byte) (uint64, error) {
	return l.AppendBatchTx(tx, p, [][]byte{data})
}

// AppendBatchTx appends records to partition p, in order, inside the
// caller's write transaction, as AppendTx does for each, and returns the
// offset of the first (0 when data is empty). The records share one
// timestamp and the head is written once, which matters to producers that
// append thousands of records per transaction.
func (l *Log) AppendBatchTx(tx *store.Tx, p uint32, data [][]byte) (uint64, error) {
	if err := l.checkPartition(p); err != nil {
		return 0, err
	}
	if len(data) == 0 {
		return 0, nil
	}
	st, err := l.state(tx, p)
	if err != nil {
		return 0, fmt.Errorf("append to log %q: %w", l.name, err)
	}
	meta, recs := st.meta[p], st.recs[p]
	size := 0
	for _, d := range data {
		size += 8 + len(d)
	}
	// bbolt keeps the value slices until commit, so one buffer holds them all.
	buf := make([]byte, size)
	now := uint64(l.opts.Clock.Now().UnixNano())
	first, off := st.head[p]+1, st.head[p]
	var key [8]byte
	for _, d := range data {
		off++
		val := buf[:8+len(d)]
		buf = buf[len(val):]
		binary.BigEndian.PutUint64(val, now)
		copy(val[8:], d)
		binary.BigEndian.PutUint64(key[:], off)
		if err := recs.Put(key[:], val); err != nil {
			return 0, fmt.Errorf("append to log %q: %w", l.name, err)
		}
	}
	if err := meta.Put(keyHead, store.U64(off)); err != nil {
		return 0, fmt.Errorf("append to log %q: %w", l.name, err)
	}
	st.head[p] = off
	failpoint.AppendBeforeCommit.Hit()
	return first, nil
}

// Append durably appends data to partition p using group commit and returns
// the offset of the first record.
func (l *Log) Append(ctx context.Context, p uint32, data ...[]byte) (uint64, error) {
	if err := l.checkPartition(p); err != nil {
		return 0, err
	}
	return store.CommitValue(ctx, l.db, func(tx *store.Tx) (uint64, error) {
		var first uint64
		for _, d := range data {
			off, err := l.AppendTx(tx, p, d)
			if err != nil {
				return 0, err
			}
			if first == 0 {
				first = off
			}
		}
		return first, nil
	})
}

// DeleteTx removes one record (right to be forgotten). Readers skip the gap;
// offsets are never reused.
func (l *Log) DeleteTx(tx *store.Tx, p uint32, offset uint64) error {
	if err := l.checkPartition(p); err != nil {
		return err
	}
	st, err := l.state(tx, p)
	if err != nil {
		return fmt.Errorf("delete from log %q: %w", l.name, err)
	}
	return st.recs[p].Delete(store.U64(offset))
}

func (l *Log) advance(p uint32, off uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if off > l.heads[p] {
		l.heads[p] = off
		close(l.wake[p])
		l.wake[p] = make(chan struct{})
	}
}

func (l *Log) waitChan(p uint32) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake[p]
}

// Read returns up to max records of partition p with offsets >= from.
// from 0 means the oldest retained record.
func (l *Log) Read(p uint32, from uint64, max int) ([]Record, error) {
	recs, _, err := l.read(p, from, max)
	return recs, err
}

// read also returns the head as of the same snapshot, so callers can tell a
// deleted gap (offsets <= that head) from records not yet visible.
func (l *Log) read(p uint32, from uint64, max int) ([]Record, uint64, error) {
	if err := l.checkPartition(p); err != nil {
		return nil, 0, err
	}
	if max <= 0 {
		max = l.opts.ReadBatch
	}
	var out []Record
	var head uint64
	err := l.db.View(func(tx *store.Tx) error {
		meta, recs, err := l.buckets(tx, p)
		if err != nil {
			return err
		}
		var first uint64 = 1
		if meta != nil {
			head = store.ParseU64(meta.Get(keyHead))
			if f := store.ParseU64(meta.Get(keyFirst)); f > 0 {
				first = f
			}
		}
		if from == 0 {
			from = first
		}
		if from < first {
			return fmt.Errorf("%w: from_offset %d, first retained offset is %d", ErrCompacted, from, first)
		}
		if from > head+1 {
			return fmt.Errorf("%w: from_offset %d, head is %d", ErrBeyondHead, from, head)
		}
		if recs == nil {
			return nil
		}
		c := recs.Cursor()
		for k, v := c.Seek(store.U64(from)); k != nil && len(out) < max; k, v = c.Next() {
			if len(v) < 8 {
				return fmt.Errorf("log %q partition %d offset %d: corrupt record", l.name, p, store.ParseU64(k))
			}
			data := make([]byte, len(v)-8)
			copy(data, v[8:])
			out = append(out, Record{Partition: p, Offset: store.ParseU64(k), Data: data})
		}
		return nil
	})
	return out, head, err
}

// Serve implements Subscribe: it sends records of partition p from offset
// from, then tails new appends without polling, until ctx ends or send fails.
func (l *Log) Serve(ctx context.Context, p uint32, from uint64, send func(recs []Record, head uint64) error) error {
	if err := l.checkPartition(p); err != nil {
		return err
	}
	if from == 0 {
		from = l.First(p)
	}
	var sent uint64
	if from > 0 {
		sent = from - 1
	}
	sv := l.serving.Track(p, sent)
	defer sv.Done()
	first := true
	for {
		// Take the wake channel before reading so an append that lands
		// between the read and the wait is not missed.
		wake := l.waitChan(p)
		recs, head, err := l.read(p, from, l.opts.ReadBatch)
		if err != nil {
			return err
		}
		if len(recs) == 0 && first {
			// A subscriber that is already caught up still learns the head,
			// so its lag is known (zero) rather than missing.
			if err := send(nil, head); err != nil {
				return err
			}
		}
		first = false
		if len(recs) > 0 {
			// Counted as sent once handed to send: the lag is what the
			// subscriber has not been given yet.
			from = recs[len(recs)-1].Offset + 1
			sv.Sent(from - 1)
			if err := send(recs, head); err != nil {
				return err
			}
			continue
		}
		// Nothing at or after from in this snapshot: offsets up to the
		// snapshot's head are deleted gaps; later ones are not written yet.
		if from <= head {
			from = head + 1
			sv.Sent(head)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		if l.opts.ServeLinger > 0 {
			t := time.NewTimer(l.opts.ServeLinger)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
}

// ApplyRetention removes records older than the retention period, at most
// chunk records per transaction so that writers are not stalled, and
// returns how many it removed.
func (l *Log) ApplyRetention(ctx context.Context, chunk int) (int, error) {
	if l.opts.Retention <= 0 {
		return 0, nil
	}
	if chunk <= 0 {
		chunk = 10000
	}
	cutoff := uint64(l.opts.Clock.Now().Add(-l.opts.Retention).UnixNano())
	total := 0
	for p := uint32(0); p < l.opts.Partitions; p++ {
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			n, more, err := l.retainChunk(p, cutoff, chunk)
			total += n
			if err != nil {
				return total, fmt.Errorf("retention on log %q partition %d: %w", l.name, p, err)
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

func (l *Log) retainChunk(p uint32, cutoff uint64, chunk int) (int, bool, error) {
	removed := 0
	more := false
	var newFirst uint64
	err := l.db.Update(func(tx *store.Tx) error {
		meta, recs, err := l.buckets(tx, p)
		if err != nil {
			return err
		}
		head := store.ParseU64(meta.Get(keyHead))
		c := recs.Cursor()
		newFirst = store.ParseU64(meta.Get(keyFirst))
		for k, v := c.First(); k != nil; k, v = c.First() {
			if removed >= chunk {
				more = true
				break
			}
			if len(v) >= 8 && binary.BigEndian.Uint64(v) >= cutoff {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
			newFirst = store.ParseU64(k) + 1
			removed++
		}
		if k, _ := c.First(); k == nil && newFirst <= head {
			// Only gaps remained: everything up to head is gone.
			newFirst = head + 1
		}
		return meta.Put(keyFirst, store.U64(newFirst))
	})
	if err == nil {
		l.mu.Lock()
		if newFirst > l.first[p] {
			l.first[p] = newFirst
		}
		l.mu.Unlock()
	}
	return removed, more, err
}

// RunRetention applies retention every interval until ctx ends.
func (l *Log) RunRetention(ctx context.Context, interval time.Duration) error {
	if l.opts.Retention <= 0 {
		<-ctx.Done()
		return nil
	}
	for {
		if _, err := l.ApplyRetention(ctx, 0); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.opts.Clock.After(interval):
		}
	}
}
