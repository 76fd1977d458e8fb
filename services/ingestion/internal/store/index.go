package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
)

// newEntry is the index row of ev as attributed now.
func newEntry(ev *ingestionv1.Event, subject string) entry {
	return entry{
		MessageID: ev.GetMessageId(), Account: ev.GetAccountId(), Subject: subject,
		Name: eventName(ev), Source: ev.GetSource(), Time: ev.GetTimestamp().AsTime(),
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

// stagedRow is an event's row in the staged bucket: the key is the
// bucket's next sequence number, which keeps the bucket append-only (keys by
// log position interleaved the partitions' tails, so every insert shifted
// the rows of the later partitions in bbolt's in-memory node), and the value
// is the event's index rows (parseStaged reads them), whose keys end in its
// log position. Everything but the sequence and the position is known
// before the write transaction, so Encoder.Record builds the row outside
// it and the transaction only writes those in.
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

// flushStaged is Writer.FlushStaged.
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
// used twice: an index pass recognises rows that someone else flushed
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

// FlushStaged moves up to max staged rows (max <= 0: all) into the timeline
// and subject indexes, each in key order so that every leaf page is visited
// once, and reports whether rows remain. Readers of those indexes flush
// first, so that they see every event logged before them.
func (w *Writer) FlushStaged(max int) (more bool, err error) { return flushStaged(&w.buckets, max) }

// StagedEmpty reports whether no index rows are staged, so that a reader
// can skip the write transaction of a flush.
func (s *Store) StagedEmpty(tx *pkgstore.Tx) bool {
	if st := tx.Bolt().Bucket(bucketStaged); st != nil {
		k, _ := st.Cursor().First()
		return k == nil
	}
	return true
}

// Staged is what an index pass read of the staged bucket: the keys of the
// rows, oldest first, and their timeline and subject rows.
type Staged struct {
	keys     [][]byte
	acc, sub []indexRow
	// legacy is set when a row is keyed by log position (files written
	// before staged keys were sequences); such keys sort apart from newer
	// rows, so the pass flushes the old way instead.
	legacy bool
}

// ReadStaged reads up to max staged rows in tx, a read transaction.
func (s *Store) ReadStaged(tx *pkgstore.Tx, max int) (*Staged, error) {
	var copies arena
	snap := &Staged{}
	st := tx.Bolt().Bucket(bucketStaged)
	if st == nil {
		return snap, nil
	}
	c := st.Cursor()
	for k, v := c.First(); k != nil && len(snap.keys) < max; k, v = c.Next() {
		if len(k) != 8 {
			snap.legacy = true
			return snap, nil
		}
		snap.keys = append(snap.keys, append(copies.take(len(k)), k...))
		ak, sk, idx, err := parseStaged(append(copies.take(len(v)), v...))
		if err != nil {
			return nil, err
		}
		if len(ak) > 0 {
			snap.acc = append(snap.acc, indexRow{ak, idx})
		}
		if len(sk) > 0 {
			snap.sub = append(snap.sub, indexRow{sk, idx})
		}
	}
	return snap, nil
}

// Legacy reports whether a staged row is keyed by log position, as files
// written before staged keys were sequences have them; such a snapshot is
// not indexed by IndexStaged (FlushStaged handles both kinds).
func (st *Staged) Legacy() bool { return st.legacy }

// Len is the number of staged rows read.
func (st *Staged) Len() int { return len(st.keys) }

// Rows is the number of index rows (timeline and subject) they hold.
func (st *Staged) Rows() int { return len(st.acc) + len(st.sub) }

// Sort puts the timeline rows and the subject rows in key order, the order
// IndexStaged writes them in.
func (st *Staged) Sort() {
	byKey := func(a, b indexRow) int { return bytes.Compare(a.key, b.key) }
	slices.SortFunc(st.acc, byKey)
	slices.SortFunc(st.sub, byKey)
}

// IndexStaged puts the sorted index rows [from, to) of st (timeline rows
// first, then subject rows) into their indexes. It reports gone, and puts
// nothing, when the oldest row of st is no longer staged: a reader flushed
// the rows meanwhile (and may since have deleted some), and putting them
// again would resurrect index rows of deleted events.
func (w *Writer) IndexStaged(st *Staged, from, to int) (gone bool, err error) {
	if len(st.keys) == 0 {
		return false, nil
	}
	if w.staged.Get(st.keys[0]) == nil {
		return true, nil
	}
	for j := from; j < to; j++ {
		r, dst, what := indexRow{}, w.accounts, "timeline"
		if j < len(st.acc) {
			r = st.acc[j]
		} else {
			r, dst, what = st.sub[j-len(st.acc)], w.subjects, "subject"
		}
		if err := dst.Put(r.key, r.val); err != nil {
			return false, fmt.Errorf("put %s index: %w", what, err)
		}
	}
	return false, nil
}

// RemoveStaged removes the staged rows [from, to) of st once they are
// indexed, or reports gone when the first of them is no longer staged (a
// reader flushed them). When they are the last rows staged it drops the
// bucket, which frees its pages at once.
func (w *Writer) RemoveStaged(st *Staged, from, to int) (gone bool, err error) {
	if w.staged.Get(st.keys[from]) == nil {
		return true, nil
	}
	if last, _ := w.staged.Cursor().Last(); bytes.Equal(last, st.keys[len(st.keys)-1]) && to == len(st.keys) {
		// Nothing was staged after the pass read: dropping the
		// bucket frees its pages at once.
		return false, dropStaged(&w.buckets)
	}
	for _, k := range st.keys[from:to] {
		if err := w.staged.Delete(k); err != nil {
			return false, fmt.Errorf("delete staged index rows: %w", err)
		}
	}
	return false, nil
}
