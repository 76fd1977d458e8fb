package store

import (
	"bytes"
	"fmt"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
)

// Writer writes evaluation outputs of one workspace in one write
// transaction, and reads back the records a consumer's batch needs. Each
// bucket is resolved once, on first use, instead of once per record: a full
// rescore writes about ten records per account, and a consumer reads and
// writes about eight per event.
type Writer struct {
	tx *kv.Tx
	ws string
	// fill, when not zero, is the FillPercent of every bucket written.
	fill float64

	accounts, signals, sigidx, snapshots, health, rows, meta, timeridx, timers *bbolt.Bucket
}

// NewWriter returns a Writer for workspace ws in the writable tx.
func NewWriter(tx *kv.Tx, ws string) *Writer { return &Writer{tx: tx, ws: ws} }

// bulkFill is the page fill of buckets written in key order by a bulk
// writer. bbolt splits pages half full by default, which suits random
// inserts; records written in key order would then take twice the pages,
// and every later rewrite of them twice the page writes.
const bulkFill = 0.95

// NewBulkWriter is NewWriter for writing many accounts in ascending id
// order: pages split while it writes are filled almost full.
func NewBulkWriter(tx *kv.Tx, ws string) *Writer { return &Writer{tx: tx, ws: ws, fill: bulkFill} }

func (w *Writer) bucket(b **bbolt.Bucket, name string) (*bbolt.Bucket, error) {
	if *b != nil {
		return *b, nil
	}
	var err error
	if name == "timers" {
		*b, err = w.tx.Bucket(name)
	} else {
		*b, err = bucket(w.tx, name, w.ws)
	}
	if err == nil && w.fill != 0 {
		(*b).FillPercent = w.fill
	}
	return *b, err
}

// Stored returns acct's stored working state (Agg nil: no such account),
// read through the Writer's buckets; the bytes are only valid during the
// transaction and must not be changed.
func (w *Writer) Stored(acct string) (Stored, error) {
	b, err := w.bucket(&w.accounts, "accounts")
	if err != nil {
		return Stored{}, err
	}
	k := []byte(acct)
	s := Stored{Agg: b.Get(k)}
	if s.Agg != nil {
		if b, err = w.bucket(&w.meta, "meta"); err != nil {
			return Stored{}, err
		}
		s.Meta = b.Get(k)
	}
	if b, err = w.bucket(&w.health, "health"); err != nil {
		return Stored{}, err
	}
	s.Health = b.Get(k)
	return s, nil
}

// SnapshotScoreAt is store.SnapshotScoreAt through the Writer's buckets.
func (w *Writer) SnapshotScoreAt(acct, day string) (float64, error) {
	b, err := w.bucket(&w.snapshots, "snapshots")
	if err != nil {
		return 0, err
	}
	return snapshotScoreAt(b.Cursor(), acct, day)
}

// PutAggregate stores an account's encoded aggregate (account.Aggregates
// Marshal).
func (w *Writer) PutAggregate(acct string, agg []byte) error {
	return w.put(&w.accounts, "accounts", []byte(acct), agg, "aggregate", acct)
}

// PutEncoded writes an evaluation's signals, snapshot, health and row.
func (w *Writer) PutEncoded(e *Encoded) error {
	for _, s := range e.Signals {
		if err := w.PutSignal(s.Signal, s.Data); err != nil {
			return err
		}
	}
	if err := w.PutSnapshot(e.Account, e.Day, e.Snapshot); err != nil {
		return err
	}
	if err := w.PutHealth(e.Account, e.Health); err != nil {
		return err
	}
	return w.PutRow(e.Account, e.Row)
}

// PutSignal stores an encoded signal and keeps the open-signal index.
func (w *Writer) PutSignal(s *commonv1.Signal, data []byte) error {
	if err := w.PutSignalRecord(s, data); err != nil {
		return err
	}
	return w.IndexSignal(s)
}

// PutSignalRecord stores an encoded signal, leaving the open-signal index
// to IndexSignal.
func (w *Writer) PutSignalRecord(s *commonv1.Signal, data []byte) error {
	b, err := w.bucket(&w.signals, "signals")
	if err != nil {
		return err
	}
	if err := b.Put(key(s.GetAccountId(), s.GetReason()), data); err != nil {
		return fmt.Errorf("put signal %q: %w", s.GetSignalId(), err)
	}
	return nil
}

// IndexSignal adds an open signal to the open-signal index, or removes a
// closed one. The index is keyed by reason, then account: calls in that
// order are cheapest.
func (w *Writer) IndexSignal(s *commonv1.Signal) error {
	idx, err := w.bucket(&w.sigidx, "sigidx")
	if err != nil {
		return err
	}
	k := key(s.GetReason(), s.GetAccountId())
	if s.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN {
		err = idx.Put(k, nil)
	} else {
		err = idx.Delete(k)
	}
	if err != nil {
		return fmt.Errorf("index signal %q: %w", s.GetSignalId(), err)
	}
	return nil
}

// PutSnapshot stores an encoded snapshot (EncodeSnapshot) of acct for day;
// nil data (an unscored evaluation) stores nothing, keeping the history.
func (w *Writer) PutSnapshot(acct, day string, data []byte) error {
	if data == nil {
		return nil
	}
	return w.put(&w.snapshots, "snapshots", key(acct, day), data, "snapshot", acct)
}

// PutHealth stores an account's encoded health.
func (w *Writer) PutHealth(acct string, health []byte) error {
	return w.put(&w.health, "health", []byte(acct), health, "health", acct)
}

// PutRow stores an account's encoded list row; a nil row removes the
// account from the lists (it is not a paying account).
func (w *Writer) PutRow(acct string, row []byte) error {
	if row == nil {
		bk, err := w.bucket(&w.rows, "rows")
		if err != nil {
			return err
		}
		if err := bk.Delete([]byte(acct)); err != nil {
			return fmt.Errorf("delete row of %q: %w", acct, err)
		}
		return nil
	}
	return w.put(&w.rows, "rows", []byte(acct), row, "row", acct)
}

// PutMeta stores an account's encoded meta (EncodeMeta).
func (w *Writer) PutMeta(acct string, meta []byte) error {
	return w.put(&w.meta, "meta", []byte(acct), meta, "meta", acct)
}

// put stores one of acct's records (what names it in errors) in the bucket
// name, resolved once per Writer into *b.
func (w *Writer) put(b **bbolt.Bucket, name string, k, v []byte, what, acct string) error {
	bk, err := w.bucket(b, name)
	if err != nil {
		return err
	}
	if err := bk.Put(k, v); err != nil {
		return fmt.Errorf("put %s of %q: %w", what, acct, err)
	}
	return nil
}

// ArmTimer (re)schedules the account's daily check, replacing any earlier one.
func (w *Writer) ArmTimer(acct string, due time.Time) error {
	idx, err := w.bucket(&w.timeridx, "timeridx")
	if err != nil {
		return err
	}
	old := idx.Get([]byte(acct))
	if old != nil && kv.ParseU64(old) == uint64(due.Unix()) {
		return nil
	}
	b, err := w.bucket(&w.timers, "timers")
	if err != nil {
		return err
	}
	if old != nil {
		if err := b.Delete(timerKey(w.ws, acct, kv.ParseU64(old))); err != nil {
			return fmt.Errorf("delete timer of %q: %w", acct, err)
		}
	}
	if err := b.Put(timerKey(w.ws, acct, uint64(due.Unix())), nil); err != nil {
		return fmt.Errorf("arm timer of %q: %w", acct, err)
	}
	return idx.Put([]byte(acct), kv.U64(uint64(due.Unix())))
}

// DisarmTimer removes the account's pending check, if any.
func (w *Writer) DisarmTimer(acct string) error {
	idx, err := w.bucket(&w.timeridx, "timeridx")
	if err != nil {
		return err
	}
	old := idx.Get([]byte(acct))
	if old == nil {
		return nil
	}
	b, err := w.bucket(&w.timers, "timers")
	if err != nil {
		return err
	}
	if err := b.Delete(timerKey(w.ws, acct, kv.ParseU64(old))); err != nil {
		return fmt.Errorf("delete timer of %q: %w", acct, err)
	}
	return idx.Delete([]byte(acct))
}

// Stored is an account's stored working state, as read in one transaction.
type Stored struct {
	// Agg and Meta are the encoded aggregate and meta (nil Agg: no such
	// account); Health the encoded health (nil: never scored).
	Agg, Meta, Health []byte
}

// Equal reports whether both hold the same bytes.
func (s *Stored) Equal(o *Stored) bool {
	return (s.Agg == nil) == (o.Agg == nil) && bytes.Equal(s.Agg, o.Agg) && bytes.Equal(s.Meta, o.Meta) &&
		(s.Health == nil) == (o.Health == nil) && bytes.Equal(s.Health, o.Health)
}

// Clone copies s out of its transaction (into one allocation).
func (s Stored) Clone() Stored {
	buf := make([]byte, 0, len(s.Agg)+len(s.Meta)+len(s.Health))
	c := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		buf = append(buf, b...)
		return buf[len(buf)-len(b) : len(buf) : len(buf)]
	}
	return Stored{Agg: c(s.Agg), Meta: c(s.Meta), Health: c(s.Health)}
}

// Reader reads the stored state of many accounts of one workspace. Reading
// accounts in ascending id order walks each bucket forward instead of
// searching it from the root for every account; any order is correct.
type Reader struct {
	agg, meta, health walker
	snapshots         *bbolt.Cursor
}

// NewReader returns a Reader over tx; the values it returns are only valid
// during tx (Stored.Clone copies them out).
func NewReader(tx *kv.Tx, ws string) (*Reader, error) {
	r := &Reader{}
	for _, x := range []struct {
		name string
		w    *walker
	}{{"accounts", &r.agg}, {"meta", &r.meta}, {"health", &r.health}, {"snapshots", nil}} {
		b, err := bucket(tx, x.name, ws)
		if err != nil {
			return nil, err
		}
		switch {
		case b == nil:
		case x.w == nil:
			r.snapshots = b.Cursor()
		default:
			x.w.c = b.Cursor()
		}
	}
	return r, nil
}

// SnapshotScoreAt is store.SnapshotScoreAt in the Reader's transaction.
func (r *Reader) SnapshotScoreAt(acct, day string) (float64, error) {
	if r.snapshots == nil {
		return 0, ErrNotFound
	}
	return snapshotScoreAt(r.snapshots, acct, day)
}

// Get returns acct's stored state (Agg nil when there is no such account).
func (r *Reader) Get(acct string) Stored {
	k := []byte(acct)
	s := Stored{Agg: r.agg.get(k)}
	if s.Agg == nil {
		return s
	}
	s.Meta, s.Health = r.meta.get(k), r.health.get(k)
	return s
}

// walker looks keys up with a cursor, stepping forward a few times before
// falling back to a seek.
type walker struct {
	c    *bbolt.Cursor
	k, v []byte
}

// walkSteps bounds the forward steps tried before a seek.
const walkSteps = 4

func (w *walker) get(key []byte) []byte {
	if w.c == nil {
		return nil
	}
	found := false
	if w.k != nil && bytes.Compare(w.k, key) <= 0 {
		for i := 0; i < walkSteps && w.k != nil; i++ {
			if c := bytes.Compare(w.k, key); c >= 0 {
				found = true
				break
			}
			w.k, w.v = w.c.Next()
		}
	}
	if !found {
		w.k, w.v = w.c.Seek(key)
	}
	if w.k == nil || !bytes.Equal(w.k, key) {
		return nil
	}
	return w.v
}
