package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store/wire"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Encoder encodes the keys and log records of one ingest batch before its
// write transaction: the transaction runs on the single committer goroutine
// shared by all callers, so it should do little besides bbolt puts.
//
// Keys, index rows and records are carved from two arenas: bbolt keeps put
// values until the commit, so nothing is reused, but a batch costs a few
// allocations instead of several per event. The zero Encoder is ready.
type Encoder struct{ keys, records arena }

// DedupKey is the dedup key of a message id of ws.
func (e *Encoder) DedupKey(ws, messageID string) []byte { return e.keys.key(ws, messageID) }

// UserKey is the user-map key of a subject of ws.
func (e *Encoder) UserKey(ws, subject string) []byte { return e.keys.key(ws, subject) }

// Record encodes ev (workspace and account already set) as logged, with
// the index rows it stages under subject.
func (e *Encoder) Record(ws, subject string, ev *ingestionv1.Event) (Record, error) {
	data, err := e.records.record(ev)
	if err != nil {
		return Record{}, err
	}
	return Record{data: data, staged: newStagedRow(&e.keys, ws, ev, subject)}, nil
}

// Record is an event's log record and its staged index rows, ready to be
// appended (Writer.Append) in a write transaction.
type Record struct {
	data   []byte
	staged stagedRow
}

// NewRecord is Encoder.Record without arenas, for events encoded inside the
// write transaction.
func NewRecord(ws, subject string, ev *ingestionv1.Event) (Record, error) {
	data, err := marshalEvent(ev)
	if err != nil {
		return Record{}, err
	}
	return Record{data: data, staged: newStagedRow(nil, ws, ev, subject)}, nil
}

func marshalEvent(ev *ingestionv1.Event) ([]byte, error) {
	b, err := wire.AppendLogRecord(nil, ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event %q: %w", ev.GetMessageId(), err)
	}
	return b, nil
}

// Stamp encodes the time a message id was first seen, for Writer.Remember.
// One stamp may serve a whole batch: bbolt keeps references to put values
// until the commit but never writes to them.
func Stamp(t time.Time) []byte { return pkgstore.U64(uint64(t.UnixNano())) }

// Seen reports whether the message id of dedup key k was first seen less
// than window before now.
func (w *Writer) Seen(k []byte, now time.Time, window time.Duration) bool {
	v := w.dedup.Get(k)
	return v != nil && now.Sub(time.Unix(0, int64(pkgstore.ParseU64(v)))) < window
}

// Remember records the message id of dedup key k as first seen at stamp.
func (w *Writer) Remember(k, stamp []byte) error {
	if err := w.dedup.Put(k, stamp); err != nil {
		return fmt.Errorf("put dedup id: %w", err)
	}
	return nil
}

// AccountChanged returns the account the user of user-map key k belongs to
// now, and whether it differs from guess (read earlier, outside the
// transaction). The usual case, where the guess holds, allocates nothing.
func (w *Writer) AccountChanged(k []byte, guess string) (account string, changed bool) {
	if a := w.users.Get(k); string(a) != guess {
		return string(a), true
	}
	return "", false
}

// UserAccount returns the account subject of ws was last grouped with; ok
// is false when it never was.
func (w *Writer) UserAccount(ws, subject string) (account string, ok bool) {
	a := w.users.Get(key(ws, subject))
	return string(a), a != nil
}

// SetUserAccount records that subject of ws now belongs to account.
func (w *Writer) SetUserAccount(ws, subject, account string) error {
	if err := w.users.Put(key(ws, subject), []byte(account)); err != nil {
		return fmt.Errorf("put user account: %w", err)
	}
	return nil
}

// Append logs rec in partition p and stages its index rows.
func (w *Writer) Append(p uint32, rec *Record) (uint64, error) {
	off, err := w.s.log.AppendTx(w.ptx, p, rec.data)
	if err != nil {
		return 0, fmt.Errorf("append event to partition %d: %w", p, err)
	}
	staged := &rec.staged
	if staged.key == nil {
		return off, nil
	}
	seq, err := w.staged.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("stage index rows: %w", err)
	}
	staged.setPosition(seq, p, off)
	if err := w.staged.Put(staged.key, staged.val); err != nil {
		return 0, fmt.Errorf("stage index rows: %w", err)
	}
	return off, nil
}

// PutPending keeps rec, logged at (p, off), as a pending event of subject
// of ws: an event whose account is not known yet.
func (w *Writer) PutPending(ws, subject string, p uint32, off uint64, rec *Record) error {
	if err := w.pending.Put(subjectKey(ws, subject, p, off), rec.data); err != nil {
		return fmt.Errorf("put pending event: %w", err)
	}
	return nil
}

// Pending is a pending event, as PendingEvents read it.
type Pending struct {
	key []byte
	// Event is the event as logged.
	Event *ingestionv1.Event
}

// PendingEvents returns the pending events of subject of ws, oldest first.
func (w *Writer) PendingEvents(ws, subject string) ([]Pending, error) {
	keys, vals := scanPrefix(w.pending, key(ws, subject))
	out := make([]Pending, len(keys))
	for i, k := range keys {
		var rec ingestionv1.LogRecord
		if err := proto.Unmarshal(vals[i], &rec); err != nil {
			return nil, fmt.Errorf("decode pending event: %w", err)
		}
		ev := rec.GetEvent()
		if ev == nil {
			return nil, errors.New("decode pending event: not an event record")
		}
		out[i] = Pending{key: k, Event: ev}
	}
	return out, nil
}

// DeletePending drops a pending event.
func (w *Writer) DeletePending(p Pending) error {
	if err := w.pending.Delete(p.key); err != nil {
		return fmt.Errorf("delete pending event: %w", err)
	}
	return nil
}

// MovePending moves the pending events of subject from of ws to subject to.
func (w *Writer) MovePending(ws, from, to string) error {
	keys, vals := scanPrefix(w.pending, key(ws, from))
	for i, k := range keys {
		p, off, err := parsePosition(k)
		if err != nil {
			return err
		}
		if err := w.pending.Put(subjectKey(ws, to, p, off), vals[i]); err != nil {
			return fmt.Errorf("move pending event: %w", err)
		}
		if err := w.pending.Delete(k); err != nil {
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

// Users reads the user map in a read transaction, for guessing the
// accounts of a batch before its write transaction.
type Users struct{ b *bbolt.Bucket }

// Users returns the user map as tx sees it.
func (s *Store) Users(tx *pkgstore.Tx) Users { return Users{tx.Bolt().Bucket(bucketUsers)} }

// Account returns the account of the user of user-map key k, "" when it
// has none.
func (u Users) Account(k []byte) string {
	if u.b == nil {
		return ""
	}
	return string(u.b.Get(k))
}
