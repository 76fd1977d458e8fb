// Package store keeps the ingestion service's durable state in its bbolt file:
// the event log (a pkg/stream Log), the dedup ids, the user-to-account map,
// the pending events of users not yet grouped, and the timeline and subject
// indexes. It only persists: the app opens the transactions and decides
// (with the identity package) what to write, and calls the typed functions
// here, which read and write the buckets inside those transactions.
package store

import (
	"errors"
	"fmt"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
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
	// touching one leaf page per account and per user; index passes move
	// them into accounts and subjects in large sorted batches. Readers of
	// those buckets flush it first. (Files written before keyed rows by
	// their 12-byte log position; nothing reads staged keys, so both kinds
	// flush alike.)
	bucketStaged = []byte("staged") // sequence -> staged rows
)

// Options configure a Store.
type Options struct {
	// Partitions is the number of log partitions.
	Partitions uint32
	// Retention removes log records older than this; 0 keeps them forever.
	Retention time.Duration
	// Clock tells the log's retention the time.
	Clock clock.Clock
	// Purge queues the positions of deleted records (Purges), for a log
	// that is also served from a replicated copy.
	Purge bool
	// ServeLinger is the log's stream.LogOptions.ServeLinger.
	ServeLinger time.Duration
}

// Store is the ingestion service's state: the event log and the buckets
// beside it in the same file.
type Store struct {
	log   *stream.Log
	purge bool
}

// Open opens the event log in db and returns the store.
func Open(db *pkgstore.DB, opts Options) (*Store, error) {
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	l, err := stream.OpenLog(db, LogName, stream.LogOptions{Partitions: opts.Partitions, Retention: opts.Retention, Clock: opts.Clock, ServeLinger: opts.ServeLinger})
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	return &Store{log: l, purge: opts.Purge}, nil
}

// Log returns the event log, which Subscribe serves.
func (s *Store) Log() *stream.Log { return s.log }

// buckets holds one write transaction's bucket handles.
type buckets struct {
	tx                                                *bbolt.Tx
	dedup, users, pending, accounts, subjects, staged *bbolt.Bucket
}

func (b *buckets) open(tx *bbolt.Tx) error {
	b.tx = tx
	for _, x := range []struct {
		name []byte
		dst  **bbolt.Bucket
	}{
		{bucketDedup, &b.dedup}, {bucketUsers, &b.users}, {bucketPending, &b.pending},
		{bucketAccounts, &b.accounts}, {bucketSubjects, &b.subjects}, {bucketStaged, &b.staged},
	} {
		bk, err := pkgstore.Bucket(tx, string(x.name))
		if err != nil {
			return err
		}
		*x.dst = bk
	}
	// Staged rows are appended in key order and removed oldest first.
	b.staged.FillPercent = 1.0
	return nil
}

// Writer reads and writes the ingestion buckets in one write transaction.
// It looks every bucket up once, so that a batch of events pays for the
// lookups once rather than per event.
type Writer struct {
	s   *Store
	ptx *pkgstore.Tx
	buckets
}

// Writer returns the store's writer for the write transaction tx.
func (s *Store) Writer(tx *pkgstore.Tx) (*Writer, error) {
	w := &Writer{s: s, ptx: tx}
	if err := w.open(tx.Bolt()); err != nil {
		return nil, err
	}
	return w, nil
}

// Counts are the numbers of rows of the buckets beside the log.
type Counts struct {
	Dedup, Users, Pending, Timeline, Subjects, Staged int
}

// Counts counts the rows of every bucket in tx.
func (s *Store) Counts(tx *pkgstore.Tx) Counts {
	var c Counts
	for _, x := range []struct {
		name []byte
		n    *int
	}{
		{bucketDedup, &c.Dedup}, {bucketUsers, &c.Users}, {bucketPending, &c.Pending},
		{bucketAccounts, &c.Timeline}, {bucketSubjects, &c.Subjects}, {bucketStaged, &c.Staged},
	} {
		if b := tx.Bolt().Bucket(x.name); b != nil {
			*x.n = b.Stats().KeyN
		}
	}
	return c
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

// ReadEvent loads the event at (p, off); nil when retention or a deletion
// removed it.
func (s *Store) ReadEvent(p uint32, off uint64) (*ingestionv1.Event, error) {
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

// Tombstone encodes the log record that tells consumers a user (userID) or
// an account (accountID) of ws was deleted at.
func Tombstone(ws, userID, accountID string, at time.Time) ([]byte, error) {
	b, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{
		Workspace: ws, AccountId: accountID, UserId: userID, DeletedAt: timestamppb.New(at),
	}}})
	if err != nil {
		return nil, fmt.Errorf("marshal tombstone: %w", err)
	}
	return b, nil
}

// AppendTombstone logs a tombstone (see Tombstone) in partition p.
func (w *Writer) AppendTombstone(p uint32, tombstone []byte) (uint64, error) {
	off, err := w.s.log.AppendTx(w.ptx, p, tombstone)
	if err != nil {
		return 0, fmt.Errorf("append tombstone to partition %d: %w", p, err)
	}
	return off, nil
}
