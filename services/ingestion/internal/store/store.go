// Package store keeps the ingestion service's durable state in its bbolt file:
// the event log (a pkg/stream Log), the dedup ids, the user-to-account map,
// the pending events of users not yet grouped, and the timeline and subject
// indexes. Every batch is written in one group-committed transaction, so an
// event is acknowledged only when it, its dedup id and its index rows are
// durable together.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
	"github.com/cairn-dev/cairn/services/ingestion/internal/wire"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SchemaVersion is the layout version of ingestion.db. Version 2 added the
// staged bucket: a version-1 binary would not index staged rows, so it must
// refuse a version-2 file.
const SchemaVersion = 2

// LogName names the event log inside the bbolt file.
const LogName = "events"

// Bucket names.
var (
	bucketDedup    = []byte("dedup")    // (ws, message_id) -> U64(first seen, Unix ns)
	bucketUsers    = []byte("users")    // (ws, subject) -> account last grouped with
	bucketPending  = []byte("pending")  // (ws, subject, partition, offset) -> Event not yet attributed
	bucketAccounts = []byte("accounts") // (ws, account, second, partition, offset) -> entry
	bucketSubjects = []byte("subjects") // (ws, subject, partition, offset) -> entry
	// bucketStaged holds the index rows of recent events, keyed by the
	// bucket's sequence so that ingest appends at one tail instead of
	// touching one leaf page per account and per user; Index moves them into
	// accounts and subjects in large sorted batches. Readers of those buckets
	// flush it first. (Files written before keyed rows by their 12-byte log
	// position; nothing reads staged keys, so both kinds flush alike.)
	bucketStaged = []byte("staged") // sequence -> staged rows
)

// ErrInvalidArgument marks errors caused by the request (the server maps it to
// InvalidArgument).
var ErrInvalidArgument = errors.New("invalid argument")

// Options configure a Store.
type Options struct {
	// Partitions is the number of log partitions.
	Partitions uint32
	// Retention removes log records older than this; 0 keeps them forever.
	Retention time.Duration
	// DedupWindow is how long a message id is remembered.
	DedupWindow time.Duration
	// Clock tells the time for dedup expiry and sweeping.
	Clock clock.Clock
	// NoGroupCommit writes each batch in its own transaction (one fsync per
	// batch) instead of sharing commits; only for comparing in benchmarks.
	NoGroupCommit bool
	// SweepChunk bounds how many dedup ids one sweep transaction examines,
	// so that sweeping never holds the write lock for long (default 5000).
	SweepChunk int
	// SweepInterval is the pause between full sweeps (default 1 minute).
	SweepInterval time.Duration
	// DeleteChunk bounds how many events one DeleteSubject transaction
	// removes (default 5000); a larger subject takes several transactions and
	// the tombstone is logged with the last one.
	DeleteChunk int
	// IndexInterval is the pause between Index passes (default 1s). Longer
	// passes index more events per leaf page they dirty; since a pass is
	// written in small transactions (IndexTxRows), acks do not wait for it.
	IndexInterval time.Duration
	// IndexChunk bounds the staged index rows one Index transaction moves
	// (default 20000), so that indexing never holds the write lock for long.
	IndexChunk int
	// IndexTxRows bounds the index rows one write transaction of an Index
	// pass puts (default 1000), so that the ingest commits queued behind it
	// wait for a bounded number of dirty pages (see indexPass).
	IndexTxRows int
	// Logger receives Index's failures, which it retries rather than
	// stopping the service over (default slog.Default()).
	Logger *slog.Logger
}

// Store is the ingestion service's state.
type Store struct {
	db   *pkgstore.DB
	log  *stream.Log
	opts Options
}

// Open opens the event log in db and returns the store.
func Open(db *pkgstore.DB, opts Options) (*Store, error) {
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.SweepChunk <= 0 {
		opts.SweepChunk = 5000
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.DeleteChunk <= 0 {
		opts.DeleteChunk = 5000
	}
	if opts.IndexInterval <= 0 {
		opts.IndexInterval = time.Second
	}
	if opts.IndexChunk <= 0 {
		opts.IndexChunk = 20000
	}
	if opts.IndexTxRows <= 0 {
		opts.IndexTxRows = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l, err := stream.OpenLog(db, LogName, stream.LogOptions{Partitions: opts.Partitions, Retention: opts.Retention, Clock: opts.Clock})
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	return &Store{db: db, log: l, opts: opts}, nil
}

// Log returns the event log, which Subscribe serves.
func (s *Store) Log() *stream.Log { return s.log }

// Options returns the effective options.
func (s *Store) Options() Options { return s.opts }

// Outcome is what happened to one event of Ingest.
type Outcome struct {
	// Duplicate is set when the message id was seen within the dedup window
	// (earlier, or earlier in the same batch).
	Duplicate bool
	// Position is where an accepted event was logged.
	Position *commonv1.LogPosition
}

// Subject returns whom an event is about: its user id, else its anonymous id.
func Subject(ev *ingestionv1.Event) string {
	if ev.GetUserId() != "" {
		return ev.GetUserId()
	}
	return ev.GetAnonymousId()
}

// partitionFor places an event: by account, else by its user so that an
// unattributed user's events stay in order.
func (s *Store) partitionFor(ws, account, subject string) uint32 {
	if account != "" {
		return stream.Partition(ws, account, s.opts.Partitions)
	}
	return stream.Partition(ws, "user:"+subject, s.opts.Partitions)
}

// buckets holds one write transaction's bucket handles.
type buckets struct {
	tx                                                *bbolt.Tx
	dedup, users, pending, accounts, subjects, staged *bbolt.Bucket
}

func openBuckets(tx *bbolt.Tx) (*buckets, error) {
	b := buckets{tx: tx}
	for _, x := range []struct {
		name []byte
		dst  **bbolt.Bucket
	}{
		{bucketDedup, &b.dedup}, {bucketUsers, &b.users}, {bucketPending, &b.pending},
		{bucketAccounts, &b.accounts}, {bucketSubjects, &b.subjects}, {bucketStaged, &b.staged},
	} {
		bk, err := pkgstore.Bucket(tx, string(x.name))
		if err != nil {
			return nil, err
		}
		*x.dst = bk
	}
	// Staged rows are appended in key order and removed oldest first.
	b.staged.FillPercent = 1.0
	return &b, nil
}

// prepared is one event of Ingest with everything that can be computed
// before the write transaction: the transaction runs on the single committer
// goroutine shared by all callers, so it should do little besides bbolt puts.
type prepared struct {
	ev *ingestionv1.Event
	// subject is Subject(ev); group is validate.ContextGroup(ev).
	subject, group string
	// account is the guessed account (group, else the user map as read
	// before the transaction); part, data and staged are the partition,
	// the encoded log record and the staged index rows for that guess.
	account string
	part    uint32
	data    []byte
	staged  stagedRow
	// dedupKey is key(ws, message id); userKey is key(ws, subject) when
	// the account comes from the user map (group is empty).
	dedupKey, userKey []byte
}

// Ingest deduplicates, attributes and logs validated events of workspace ws
// in one transaction shared with concurrent callers, and returns one outcome
// per event once they are durable. Events must have a message id; Ingest
// sets their workspace and account_id.
func (s *Store) Ingest(ctx context.Context, ws string, events []*ingestionv1.Event) ([]Outcome, error) {
	now := s.opts.Clock.Now()
	// Encode outside the write transaction. The account of an event
	// without context.groupId is guessed from the user map in a concurrent
	// read transaction; the write transaction re-encodes only the events
	// whose guess turned out stale (a group call in between).
	//
	// Keys, index rows and records are carved from two arenas: bbolt keeps
	// put values until the commit, so nothing is reused, but a batch costs a
	// few allocations instead of several per event.
	var keys, records arena
	pre := make([]prepared, len(events))
	needUsers := false
	for i, ev := range events {
		ev.Workspace = ws
		g := validate.ContextGroup(ev)
		pr := &pre[i]
		*pr = prepared{ev: ev, subject: Subject(ev), group: g, account: g, dedupKey: keys.key(ws, ev.GetMessageId())}
		if g == "" {
			pr.userKey = keys.key(ws, pr.subject)
			needUsers = true
		}
	}
	if needUsers {
		if err := s.db.View(func(tx *bbolt.Tx) error {
			users := tx.Bucket(bucketUsers)
			if users == nil {
				return nil
			}
			for i := range pre {
				if pre[i].group == "" {
					pre[i].account = string(users.Get(pre[i].userKey))
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("look up user accounts: %w", err)
		}
	}
	for i := range pre {
		pr := &pre[i]
		pr.ev.AccountId = pr.account
		b, err := records.record(pr.ev)
		if err != nil {
			return nil, err
		}
		pr.data = b
		pr.part = s.partitionFor(ws, pr.account, pr.subject)
		pr.staged = newStagedRow(&keys, ws, pr.ev, pr.subject)
	}
	// One shared, read-only value: bbolt keeps references to put values
	// until the commit but never writes to them.
	seen := pkgstore.U64(uint64(now.UnixNano()))
	out := make([]Outcome, len(events))
	positions := make([]commonv1.LogPosition, len(events))
	fn := func(tx *bbolt.Tx) error {
		// fn may run again if another member of the group commit fails:
		// start from scratch every time.
		clear(out)
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		for i := range pre {
			pr := &pre[i]
			ev := pr.ev
			if v := b.dedup.Get(pr.dedupKey); v != nil && now.Sub(time.Unix(0, int64(pkgstore.ParseU64(v)))) < s.opts.DedupWindow {
				out[i].Duplicate = true
				continue
			}
			if err := b.dedup.Put(pr.dedupKey, seen); err != nil {
				return fmt.Errorf("put dedup id: %w", err)
			}
			subject := pr.subject
			account, part, data, staged := pr.account, pr.part, pr.data, &pr.staged
			if pr.group == "" {
				// Comparing without converting keeps the usual case
				// (the guess holds) free of allocations.
				if a := b.users.Get(pr.userKey); string(a) != pr.account {
					account = string(a)
					ev.AccountId = account
					if data, err = marshalEvent(ev); err != nil {
						return err
					}
					part, staged = s.partitionFor(ws, account, subject), nil
				}
			}
			ev.AccountId = account
			off, err := s.append(tx, b, ws, subject, ev, part, data, staged)
			if err != nil {
				return err
			}
			pos := &positions[i]
			pos.Partition, pos.Offset = part, off
			out[i].Position = pos
			if account == "" {
				k := subjectKey(ws, subject, part, off)
				if err := b.pending.Put(k, data); err != nil {
					return fmt.Errorf("put pending event: %w", err)
				}
			}
			switch {
			case subject == "":
			case ev.GetType() == ingestionv1.EventType_EVENT_TYPE_GROUP:
				if err := s.group(tx, b, ws, subject, ev.GetGroupId()); err != nil {
					return err
				}
			case ev.GetType() == ingestionv1.EventType_EVENT_TYPE_ALIAS:
				if err := s.alias(tx, b, ws, ev.GetPreviousId(), subject); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := s.write(ctx, fn); err != nil {
		return nil, fmt.Errorf("commit batch of %d events: %w", len(events), err)
	}
	return out, nil
}

func (s *Store) write(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if s.opts.NoGroupCommit {
		return s.db.Update(fn)
	}
	return s.db.Commit(ctx, fn)
}

func marshalEvent(ev *ingestionv1.Event) ([]byte, error) {
	b, err := wire.AppendLogRecord(nil, ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event %q: %w", ev.GetMessageId(), err)
	}
	return b, nil
}

// newEntry is the index row of ev as attributed now.
func newEntry(ev *ingestionv1.Event, subject string) entry {
	return entry{
		MessageID: ev.GetMessageId(), Account: ev.GetAccountId(), Subject: subject,
		Name: eventName(ev), Source: ev.GetSource(), Time: ev.GetTimestamp().AsTime(),
	}
}

// append logs one event record in partition p and stages its index rows.
// staged is the event's staged row as prepared before the transaction, nil
// to build it here.
func (s *Store) append(tx *bbolt.Tx, b *buckets, ws, subject string, ev *ingestionv1.Event, p uint32, data []byte, staged *stagedRow) (uint64, error) {
	off, err := s.log.AppendTx(tx, p, data)
	if err != nil {
		return 0, fmt.Errorf("append event to partition %d: %w", p, err)
	}
	if staged == nil {
		r := newStagedRow(nil, ws, ev, subject)
		staged = &r
	}
	if staged.key == nil {
		return off, nil
	}
	seq, err := b.staged.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("stage index rows: %w", err)
	}
	staged.setPosition(seq, p, off)
	if err := b.staged.Put(staged.key, staged.val); err != nil {
		return 0, fmt.Errorf("stage index rows: %w", err)
	}
	return off, nil
}

// stagedRow is an event's row in the staged bucket: the key is the
// bucket's next sequence number, which keeps the bucket append-only (keys by
// log position interleaved the partitions' tails, so every insert shifted
// the rows of the later partitions in bbolt's in-memory node), and the value
// is the event's index rows (parseStaged reads them), whose keys end in its
// log position. Everything but the sequence and the position is known
// before the write transaction, so Ingest builds the row outside it and the
// transaction only writes those in.
type stagedRow struct {
	key, val []byte
	// acct and subj are where the timeline and subject keys' positions
	// start in val; -1 when that row does not apply.
	acct, subj int
}

// newStagedRow builds ev's staged row in a (nil: plain allocations), with
// the position left for setPosition. Its key is nil when the event has no
// index rows (neither an account nor a subject).
func newStagedRow(a *arena, ws string, ev *ingestionv1.Event, subject string) stagedRow {
	e := newEntry(ev, subject)
	if e.Account == "" && subject == "" {
		return stagedRow{acct: -1, subj: -1}
	}
	var akLen, skLen int
	if e.Account != "" {
		akLen = keySize(ws, e.Account) + 8 + positionLen
	}
	if subject != "" {
		skLen = keySize(ws, subject) + positionLen
	}
	r := stagedRow{acct: -1, subj: -1}
	r.key = a.take(8)[:8]
	v := a.take(uvarintLen(akLen) + akLen + uvarintLen(skLen) + skLen + e.size())
	v = binary.AppendUvarint(v, uint64(akLen))
	if akLen > 0 {
		v = appendU64(appendKey(v, ws, e.Account), sortableSeconds(e.Time.Unix()))
		r.acct = len(v)
		v = append(v, make([]byte, positionLen)...)
	}
	v = binary.AppendUvarint(v, uint64(skLen))
	if skLen > 0 {
		v = appendKey(v, ws, subject)
		r.subj = len(v)
		v = append(v, make([]byte, positionLen)...)
	}
	r.val = e.appendTo(v)
	return r
}

// setPosition writes the staged sequence number into the row's key and the
// log position into its index keys.
func (r *stagedRow) setPosition(seq uint64, p uint32, off uint64) {
	binary.BigEndian.PutUint64(r.key, seq)
	var pos [positionLen]byte
	position(pos[:0], p, off)
	if r.acct >= 0 {
		copy(r.val[r.acct:], pos[:])
	}
	if r.subj >= 0 {
		copy(r.val[r.subj:], pos[:])
	}
}

// parseStaged decodes a staged row's value (see newStagedRow): the timeline
// key and the subject key, each length-prefixed and empty when the row does
// not apply, then the entry both rows store. The slices alias v.
func parseStaged(v []byte) (accountKey, subjectKey, index []byte, err error) {
	var parts [2][]byte
	for i := range parts {
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n {
			return nil, nil, nil, errors.New("decode staged index rows: truncated key")
		}
		parts[i] = v[w : w+int(n)]
		v = v[w+int(n):]
	}
	return parts[0], parts[1], v, nil
}

// indexRow is one staged row on its way to accounts or subjects.
type indexRow struct{ key, val []byte }

// flushStaged moves up to max staged rows (max <= 0: all) into the
// accounts and subjects buckets, each in key order so that every leaf page
// is visited once, and reports whether rows remain.
func flushStaged(b *buckets, max int) (more bool, err error) {
	var acc, sub []indexRow
	var moved [][]byte
	// Staged values point into the transaction's pages, which the staged
	// rows' deletion below may free: each is copied, once for both of its
	// rows, into a shared arena.
	var copies arena
	n := 0
	c := b.staged.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if max > 0 && n == max {
			more = true
			break
		}
		n++
		moved = append(moved, k)
		ak, sk, idx, err := parseStaged(append(copies.take(len(v)), v...))
		if err != nil {
			return false, err
		}
		if len(ak) > 0 {
			acc = append(acc, indexRow{ak, idx})
		}
		if len(sk) > 0 {
			sub = append(sub, indexRow{sk, idx})
		}
	}
	for _, x := range []struct {
		rows []indexRow
		dst  *bbolt.Bucket
		what string
	}{{acc, b.accounts, "timeline"}, {sub, b.subjects, "subject"}} {
		slices.SortFunc(x.rows, func(a, b indexRow) int { return bytes.Compare(a.key, b.key) })
		for _, r := range x.rows {
			if err := x.dst.Put(r.key, r.val); err != nil {
				return false, fmt.Errorf("put %s index: %w", x.what, err)
			}
		}
	}
	if !more {
		// Everything moved: dropping the bucket frees its pages at once,
		// where deleting row by row from the front would walk the emptied
		// leaves again for every row.
		return false, dropStaged(b)
	}
	for _, k := range moved {
		if err := b.staged.Delete(k); err != nil {
			return false, fmt.Errorf("delete staged index rows: %w", err)
		}
	}
	return true, nil
}

// dropStaged empties the staged bucket by dropping and recreating it. The
// new bucket carries on the old one's sequence, so that a staged key is never
// used twice: an Index pass recognises rows that someone else flushed
// meanwhile by their key being gone.
func dropStaged(b *buckets) error {
	seq := b.staged.Sequence()
	if err := b.tx.DeleteBucket(bucketStaged); err != nil {
		return fmt.Errorf("drop staged index rows: %w", err)
	}
	st, err := b.tx.CreateBucket(bucketStaged)
	if err != nil {
		return fmt.Errorf("recreate staged bucket: %w", err)
	}
	if err := st.SetSequence(seq); err != nil {
		return fmt.Errorf("recreate staged bucket: %w", err)
	}
	st.FillPercent = 1.0
	b.staged = st
	return nil
}

// Index keeps the accounts and subjects indexes up to date until ctx ends:
// every IndexInterval it moves the staged rows in transactions of at most
// IndexChunk rows. Readers do not depend on it (they flush first); it keeps
// those flushes, and the staged bucket, small. A failed pass (a full disk)
// is logged and retried after the interval, so the service keeps running.
func (s *Store) Index(ctx context.Context) error {
	for {
		if err := s.indexPass(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.opts.Logger.Warn("index staged rows failed; retrying", "err", err, "retry_in", s.opts.IndexInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.opts.Clock.After(s.opts.IndexInterval):
		}
	}
}

// indexPass moves the rows staged so far (at most 10 × IndexChunk) into the
// indexes without holding the single writer for long. One big transaction
// per pass dirtied a leaf per account and per user that received events, and
// every ingest commit queued behind it waited for all of those pages to be
// written and synced (p99 ack latency of 100-300 ms at 20,000 events/s).
// Instead the pass reads the rows in a read transaction, sorts the timeline
// and the subject rows by key, and writes them in key order, IndexTxRows rows
// per write transaction: each transaction dirties the leaves of one narrow key
// range, and the acks queued behind it wait for that chunk only.
//
// The staged rows stay until every chunk is written, so a reader that flushes
// meanwhile (Timeline, DeleteSubject, PruneChunk) still finds them. Readers
// remove staged rows oldest first and staged keys are never reused
// (dropStaged), so once the oldest row the pass read is gone, a reader has
// flushed everything the pass still had to write (and may since have deleted
// some of it): the pass stops there. Putting a row that is already in its
// index changes nothing, so a crash between chunks only repeats work.
func (s *Store) indexPass(ctx context.Context) error {
	snap, err := s.readStaged()
	if err != nil {
		return err
	}
	if snap.legacy {
		return s.flush(ctx, s.opts.IndexChunk)
	}
	return s.indexStaged(ctx, snap)
}

// stagedSnapshot is what an Index pass read of the staged bucket: the keys
// of the rows, oldest first, and their timeline and subject rows.
type stagedSnapshot struct {
	keys     [][]byte
	acc, sub []indexRow
	// legacy is set when a row is keyed by log position (files written
	// before staged keys were sequences); such keys sort apart from newer
	// rows, so the pass flushes the old way instead.
	legacy bool
}

// readStaged reads up to 10 × IndexChunk staged rows in a read transaction.
func (s *Store) readStaged() (*stagedSnapshot, error) {
	var copies arena
	snap := &stagedSnapshot{}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		st := tx.Bucket(bucketStaged)
		if st == nil {
			return nil
		}
		c := st.Cursor()
		for k, v := c.First(); k != nil && len(snap.keys) < 10*s.opts.IndexChunk; k, v = c.Next() {
			if len(k) != 8 {
				snap.legacy = true
				return nil
			}
			snap.keys = append(snap.keys, append(copies.take(len(k)), k...))
			ak, sk, idx, err := parseStaged(append(copies.take(len(v)), v...))
			if err != nil {
				return err
			}
			if len(ak) > 0 {
				snap.acc = append(snap.acc, indexRow{ak, idx})
			}
			if len(sk) > 0 {
				snap.sub = append(snap.sub, indexRow{sk, idx})
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read staged index rows: %w", err)
	}
	return snap, nil
}

// indexStaged writes snap's rows into the indexes in key order, IndexTxRows
// per transaction, then removes its staged rows; it stops early when a
// reader flushed them meanwhile (see indexPass).
func (s *Store) indexStaged(ctx context.Context, snap *stagedSnapshot) error {
	staged, acc, sub := snap.keys, snap.acc, snap.sub
	if len(staged) == 0 {
		return nil
	}
	byKey := func(a, b indexRow) int { return bytes.Compare(a.key, b.key) }
	slices.SortFunc(acc, byKey)
	slices.SortFunc(sub, byKey)
	rows := len(acc) + len(sub)
	txRows := s.passTxRows(rows)
	for i := 0; i < rows; i += txRows {
		end := min(i+txRows, rows)
		gone := false
		if err := s.write(ctx, func(tx *bbolt.Tx) error {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			if gone = b.staged.Get(staged[0]) == nil; gone {
				return nil
			}
			for j := i; j < end; j++ {
				r, dst, what := indexRow{}, b.accounts, "timeline"
				if j < len(acc) {
					r = acc[j]
				} else {
					r, dst, what = sub[j-len(acc)], b.subjects, "subject"
				}
				if err := dst.Put(r.key, r.val); err != nil {
					return fmt.Errorf("put %s index: %w", what, err)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("index staged rows: %w", err)
		}
		if gone {
			return nil
		}
	}
	// Remove the moved rows, oldest first like a reader's flush.
	for i := 0; i < len(staged); i += s.opts.IndexChunk {
		end := min(i+s.opts.IndexChunk, len(staged))
		gone := false
		if err := s.write(ctx, func(tx *bbolt.Tx) error {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			if gone = b.staged.Get(staged[i]) == nil; gone {
				return nil
			}
			if last, _ := b.staged.Cursor().Last(); bytes.Equal(last, staged[len(staged)-1]) && end == len(staged) {
				// Nothing was staged after the pass read: dropping the
				// bucket frees its pages at once.
				return dropStaged(b)
			}
			for _, k := range staged[i:end] {
				if err := b.staged.Delete(k); err != nil {
					return fmt.Errorf("delete staged index rows: %w", err)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("remove indexed staged rows: %w", err)
		}
		if gone {
			return nil
		}
	}
	return nil
}

// maxPassTxs bounds the write transactions one Index pass takes to put its
// rows (see passTxRows).
const maxPassTxs = 32

// passTxRows is how many of a pass's rows index rows one transaction puts:
// IndexTxRows, or more when the pass would take over maxPassTxs
// transactions. Each chunk shares a group commit with whatever ingest
// batches are queued, so at fixed chunks a sustained overload gave ingest
// nearly all of the writer and the staged backlog grew without bound; chunks
// that grow with the backlog let indexing keep pace, at the cost of longer
// commits only while it is behind.
func (s *Store) passTxRows(rows int) int {
	return max(s.opts.IndexTxRows, (rows+maxPassTxs-1)/maxPassTxs)
}

// flush moves all staged rows into the indexes, chunk rows per transaction,
// skipping the write transaction when nothing is staged.
func (s *Store) flush(ctx context.Context, chunk int) error {
	for {
		empty := true
		if err := s.db.View(func(tx *bbolt.Tx) error {
			if st := tx.Bucket(bucketStaged); st != nil {
				k, _ := st.Cursor().First()
				empty = k == nil
			}
			return nil
		}); err != nil {
			return fmt.Errorf("check staged index rows: %w", err)
		}
		if empty {
			return nil
		}
		var more bool
		if err := s.write(ctx, func(tx *bbolt.Tx) error {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			more, err = flushStaged(b, chunk)
			return err
		}); err != nil {
			return fmt.Errorf("index staged rows: %w", err)
		}
		if !more {
			return nil
		}
	}
}

// eventName is the name timelines filter on: the track event, else the
// page or screen name.
func eventName(ev *ingestionv1.Event) string {
	if ev.GetEvent() != "" {
		return ev.GetEvent()
	}
	return ev.GetName()
}

// group records that subject now belongs to account and re-attributes the
// subject's pending events.
func (s *Store) group(tx *bbolt.Tx, b *buckets, ws, subject, account string) error {
	if err := b.users.Put(key(ws, subject), []byte(account)); err != nil {
		return fmt.Errorf("put user account: %w", err)
	}
	return s.reattribute(tx, b, ws, subject, subject, account)
}

// alias merges the identity previous into subject (Segment's alias call,
// typically an anonymous id becoming a known user): subject inherits
// previous's account if it has none, and previous's pending events follow
// subject, re-attributed at once if subject has an account.
func (s *Store) alias(tx *bbolt.Tx, b *buckets, ws, previous, subject string) error {
	if previous == subject {
		return nil
	}
	account := string(b.users.Get(key(ws, subject)))
	if account == "" {
		if a := b.users.Get(key(ws, previous)); a != nil {
			// subject inherits the account, so its own pending events
			// (this alias call among them) are attributed now too.
			if err := s.group(tx, b, ws, subject, string(a)); err != nil {
				return err
			}
			account = string(a)
		}
	}
	if account != "" {
		return s.reattribute(tx, b, ws, previous, subject, account)
	}
	// Neither is grouped yet: move the pending rows so that a later group
	// call for subject finds them.
	keys, vals := scanPrefix(b.pending, key(ws, previous))
	for i, k := range keys {
		p, off, err := parsePosition(k)
		if err != nil {
			return err
		}
		if err := b.pending.Put(subjectKey(ws, subject, p, off), vals[i]); err != nil {
			return fmt.Errorf("move pending event: %w", err)
		}
		if err := b.pending.Delete(k); err != nil {
			return fmt.Errorf("move pending event: %w", err)
		}
	}
	return nil
}

// scanPrefix copies the rows of b whose key starts with prefix.
func scanPrefix(b *bbolt.Bucket, prefix []byte) (keys, vals [][]byte) {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		vals = append(vals, bytes.Clone(v))
	}
	return keys, vals
}

// reattribute logs, for each pending event of pendingSubject, a copy
// attributed to account with reattributed set, indexed under subject, and
// drops the pending rows.
func (s *Store) reattribute(tx *bbolt.Tx, b *buckets, ws, pendingSubject, subject, account string) error {
	keys, vals := scanPrefix(b.pending, key(ws, pendingSubject))
	for i, k := range keys {
		var rec ingestionv1.LogRecord
		if err := proto.Unmarshal(vals[i], &rec); err != nil {
			return fmt.Errorf("decode pending event: %w", err)
		}
		ev := rec.GetEvent()
		if ev == nil {
			return errors.New("decode pending event: not an event record")
		}
		ev.AccountId = account
		ev.Reattributed = true
		data, err := marshalEvent(ev)
		if err != nil {
			return err
		}
		if _, err := s.append(tx, b, ws, subject, ev, s.partitionFor(ws, account, subject), data, nil); err != nil {
			return err
		}
		if err := b.pending.Delete(k); err != nil {
			return fmt.Errorf("delete pending event: %w", err)
		}
	}
	return nil
}

// Sweep keeps storage bounded until ctx ends: in passes separated by
// SweepInterval it deletes dedup ids older than the window and, when the log
// has a retention, the index rows and pending events whose log records
// retention removed. Every transaction examines at most SweepChunk keys.
func (s *Store) Sweep(ctx context.Context) error {
	for {
		if err := s.sweepPass(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.opts.Clock.After(s.opts.SweepInterval):
		}
	}
}

func (s *Store) sweepPass(ctx context.Context) error {
	var after []byte
	for {
		next, _, err := s.SweepChunk(ctx, after)
		if err != nil {
			return err
		}
		if after = next; after == nil {
			break
		}
	}
	if s.opts.Retention <= 0 {
		return nil
	}
	for _, b := range [][]byte{bucketPending, bucketAccounts, bucketSubjects} {
		var after []byte
		for {
			next, _, err := s.PruneChunk(ctx, b, after)
			if err != nil {
				return err
			}
			if after = next; after == nil {
				break
			}
		}
	}
	return nil
}

// PruneChunk examines up to SweepChunk rows of an index bucket (keys end in
// a log position) after the key after, deletes those whose log record is
// older than the log's first retained offset, and returns the key to
// continue from, nil when the pass is complete.
func (s *Store) PruneChunk(ctx context.Context, bucket []byte, after []byte) (next []byte, deleted int, err error) {
	first := make([]uint64, s.log.Partitions())
	for p := range first {
		first[p] = s.log.First(uint32(p))
	}
	err = s.write(ctx, func(tx *bbolt.Tx) error {
		next, deleted = nil, 0
		all, err := openBuckets(tx)
		if err != nil {
			return err
		}
		if _, err := flushStaged(all, 0); err != nil {
			return err
		}
		b, err := pkgstore.Bucket(tx, string(bucket))
		if err != nil {
			return err
		}
		var stale [][]byte
		c := b.Cursor()
		k, _ := c.First()
		if after != nil {
			k, _ = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, _ = c.Next()
			}
		}
		for n := 0; k != nil && n < s.opts.SweepChunk; k, _ = c.Next() {
			n++
			next = bytes.Clone(k)
			p, off, err := parsePosition(k)
			if err != nil {
				return err
			}
			if int(p) < len(first) && off < first[p] {
				stale = append(stale, bytes.Clone(k))
			}
		}
		if k == nil {
			next = nil
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete stale index row: %w", err)
			}
		}
		deleted = len(stale)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("prune %s index: %w", bucket, err)
	}
	return next, deleted, nil
}

// SweepChunk examines up to SweepChunk dedup ids after the key after (nil:
// from the start), deletes the expired ones and returns the key to continue
// from, nil when the pass is complete.
func (s *Store) SweepChunk(ctx context.Context, after []byte) (next []byte, deleted int, err error) {
	cutoff := uint64(s.opts.Clock.Now().Add(-s.opts.DedupWindow).UnixNano())
	err = s.write(ctx, func(tx *bbolt.Tx) error {
		next, deleted = nil, 0
		b, err := pkgstore.Bucket(tx, string(bucketDedup))
		if err != nil {
			return err
		}
		var expired [][]byte
		c := b.Cursor()
		k, v := c.First()
		if after != nil {
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		n := 0
		for ; k != nil && n < s.opts.SweepChunk; k, v = c.Next() {
			n++
			if pkgstore.ParseU64(v) < cutoff {
				expired = append(expired, bytes.Clone(k))
			}
			next = bytes.Clone(k)
		}
		if k == nil {
			next = nil
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete expired dedup id: %w", err)
			}
		}
		deleted = len(expired)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sweep dedup ids: %w", err)
	}
	return next, deleted, nil
}

// TimelineQuery selects events of one account.
type TimelineQuery struct {
	// Workspace and Account name the account.
	Workspace, Account string
	// Name and Source filter when non-empty.
	Name, Source string
	// Start and End bound the event time, [Start, End); zero is open.
	Start, End time.Time
	// Limit is the page size.
	Limit int
	// After is the key of the last event of the previous page (nil: newest).
	After []byte
}

// maxScan bounds the index rows one timeline page examines, so that a
// selective filter over a long history cannot pin a read transaction.
const maxScan = 10000

// Timeline returns an account's events newest first, including every event
// acknowledged before the call. next is the key to pass
// as After for the following page, nil when there are no more.
func (s *Store) Timeline(ctx context.Context, q TimelineQuery) (events []*ingestionv1.Event, next []byte, err error) {
	// Every event acknowledged before the call is in the index once staged
	// rows are flushed.
	if err := s.flush(ctx, s.opts.IndexChunk); err != nil {
		return nil, nil, fmt.Errorf("scan timeline of %q: %w", q.Account, err)
	}
	prefix := key(q.Workspace, q.Account)
	type hit struct {
		p   uint32
		off uint64
	}
	var hits []hit
	err = s.db.View(func(tx *bbolt.Tx) error {
		b, err := pkgstore.Bucket(tx, string(bucketAccounts))
		if err != nil || b == nil {
			return err
		}
		// Seek to the first row after the page start and step back: rows at
		// or after it were returned already (or are newer than the prefix).
		start := append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 21)...)
		if q.After != nil {
			start = append(bytes.Clone(prefix), q.After...)
		}
		c := b.Cursor()
		k, v := c.Seek(start)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		scanned := 0
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if len(hits) == q.Limit || scanned == maxScan {
				return nil // next names the last row examined
			}
			scanned++
			next = bytes.Clone(k[len(prefix):])
			var e entry
			if err := e.unmarshal(v); err != nil {
				return err
			}
			if (q.Name != "" && e.Name != q.Name) || (q.Source != "" && e.Source != q.Source) ||
				(!q.Start.IsZero() && e.Time.Before(q.Start)) || (!q.End.IsZero() && !e.Time.Before(q.End)) {
				continue
			}
			p, off, err := parsePosition(k)
			if err != nil {
				return err
			}
			hits = append(hits, hit{p, off})
		}
		next = nil
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan timeline of %q: %w", q.Account, err)
	}
	for _, h := range hits {
		ev, err := s.readEvent(h.p, h.off)
		if err != nil {
			return nil, nil, err
		}
		if ev != nil {
			events = append(events, ev)
		}
	}
	return events, next, nil
}

// readEvent loads the event at (p, off); nil when retention or a deletion
// removed it.
func (s *Store) readEvent(p uint32, off uint64) (*ingestionv1.Event, error) {
	recs, err := s.log.Read(p, off, 1)
	if errors.Is(err, stream.ErrCompacted) || errors.Is(err, stream.ErrBeyondHead) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read event %d/%d: %w", p, off, err)
	}
	if len(recs) == 0 || recs[0].Offset != off {
		return nil, nil
	}
	var rec ingestionv1.LogRecord
	if err := proto.Unmarshal(recs[0].Data, &rec); err != nil {
		return nil, fmt.Errorf("decode event %d/%d: %w", p, off, err)
	}
	return rec.GetEvent(), nil
}

// Deletion reports what DeleteSubject removed.
type Deletion struct {
	// Events is the number of log records removed.
	Events int64
	// Tombstone is where the tombstone was logged in the subject's own
	// partition. Tombstones are also logged in every other partition that
	// held deleted events, so that each consumer sees one after the events.
	Tombstone *commonv1.LogPosition
}

// DeleteSubject forgets a user (userID) or an account (accountID) of ws: its
// log records, index rows, dedup ids, pending events and user mapping are
// deleted, in chunks of DeleteChunk events per transaction, and tombstones
// are logged with the last chunk.
func (s *Store) DeleteSubject(ctx context.Context, ws, userID, accountID string) (*Deletion, error) {
	if (userID == "") == (accountID == "") {
		return nil, fmt.Errorf("%w: exactly one of user_id and account_id is required", ErrInvalidArgument)
	}
	if accountID != "" {
		// Forget which users belonged to the account, so that their later
		// events are not attributed to it again.
		var after []byte
		for {
			next, err := s.unmapUsers(ctx, ws, accountID, after)
			if err != nil {
				return nil, err
			}
			if after = next; after == nil {
				break
			}
		}
	}
	home := s.partitionFor(ws, accountID, userID)
	touched := map[uint32]bool{home: true}
	res := &Deletion{}
	for {
		var (
			done      bool
			n         int64
			tomb      *commonv1.LogPosition
			chunkSeen map[uint32]bool
		)
		err := s.write(ctx, func(tx *bbolt.Tx) error {
			done, n, tomb, chunkSeen = false, 0, nil, map[uint32]bool{}
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			// Index everything logged so far, including events of earlier
			// members of this very transaction.
			if _, err := flushStaged(b, 0); err != nil {
				return err
			}
			idx, prefix := b.subjects, key(ws, userID)
			if accountID != "" {
				idx, prefix = b.accounts, key(ws, accountID)
			}
			var keys, vals [][]byte
			c := idx.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < s.opts.DeleteChunk; k, v = c.Next() {
				keys = append(keys, bytes.Clone(k))
				vals = append(vals, bytes.Clone(v))
			}
			for i, k := range keys {
				var e entry
				if err := e.unmarshal(vals[i]); err != nil {
					return err
				}
				p, off, err := parsePosition(k)
				if err != nil {
					return err
				}
				if err := s.log.DeleteTx(tx, p, off); err != nil && !errors.Is(err, stream.ErrCompacted) {
					return fmt.Errorf("delete log record %d/%d: %w", p, off, err)
				}
				chunkSeen[p] = true
				if err := b.dedup.Delete(key(ws, e.MessageID)); err != nil {
					return fmt.Errorf("delete dedup id: %w", err)
				}
				if e.Account != "" {
					if err := b.accounts.Delete(accountKey(ws, e.Account, e.Time, p, off)); err != nil {
						return fmt.Errorf("delete timeline row: %w", err)
					}
				}
				if e.Subject != "" {
					if err := b.subjects.Delete(subjectKey(ws, e.Subject, p, off)); err != nil {
						return fmt.Errorf("delete subject row: %w", err)
					}
					if err := b.pending.Delete(subjectKey(ws, e.Subject, p, off)); err != nil {
						return fmt.Errorf("delete pending event: %w", err)
					}
				}
				n++
			}
			if len(keys) == s.opts.DeleteChunk {
				return nil
			}
			if userID != "" {
				if err := b.users.Delete(key(ws, userID)); err != nil {
					return fmt.Errorf("delete user account: %w", err)
				}
				// Pending rows moved here by an alias are indexed under the
				// previous id, so drop whatever is left under the user.
				pk, _ := scanPrefix(b.pending, key(ws, userID))
				for _, k := range pk {
					if err := b.pending.Delete(k); err != nil {
						return fmt.Errorf("delete pending event: %w", err)
					}
				}
			}
			tombstone, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{
				Workspace: ws, AccountId: accountID, UserId: userID, DeletedAt: timestamppb.New(s.opts.Clock.Now()),
			}}})
			if err != nil {
				return fmt.Errorf("marshal tombstone: %w", err)
			}
			for p := range s.opts.Partitions {
				if !touched[p] && !chunkSeen[p] {
					continue
				}
				off, err := s.log.AppendTx(tx, p, tombstone)
				if err != nil {
					return fmt.Errorf("append tombstone to partition %d: %w", p, err)
				}
				if p == home {
					tomb = &commonv1.LogPosition{Partition: p, Offset: off}
				}
			}
			done = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("delete subject: %w", err)
		}
		res.Events += n
		for p := range chunkSeen {
			touched[p] = true
		}
		if done {
			res.Tombstone = tomb
			return res, nil
		}
	}
}

// unmapUsers examines up to 8*DeleteChunk user rows of ws after the key
// after, deletes those mapped to account, and returns the key to continue
// from, nil when all users of ws were examined.
func (s *Store) unmapUsers(ctx context.Context, ws, account string, after []byte) (next []byte, err error) {
	prefix := key(ws)
	err = s.write(ctx, func(tx *bbolt.Tx) error {
		next = nil
		b, err := pkgstore.Bucket(tx, string(bucketUsers))
		if err != nil {
			return err
		}
		var drop [][]byte
		c := b.Cursor()
		k, v := c.Seek(prefix)
		if after != nil {
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for n := 0; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n == 8*s.opts.DeleteChunk {
				return deleteKeys(b, drop) // next names the last row examined
			}
			n++
			next = bytes.Clone(k)
			if string(v) == account {
				drop = append(drop, bytes.Clone(k))
			}
		}
		next = nil
		return deleteKeys(b, drop)
	})
	if err != nil {
		return nil, fmt.Errorf("unmap users of account %q: %w", account, err)
	}
	return next, nil
}

func deleteKeys(b *bbolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Decode turns a log record into its LogRecord with the position filled in.
func Decode(r stream.Record) (*ingestionv1.LogRecord, error) {
	var rec ingestionv1.LogRecord
	if err := proto.Unmarshal(r.Data, &rec); err != nil {
		return nil, fmt.Errorf("decode log record %d/%d: %w", r.Partition, r.Offset, err)
	}
	rec.Offset, rec.Partition = r.Offset, r.Partition
	return &rec, nil
}
