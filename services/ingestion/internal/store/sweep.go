package store

import (
	"bytes"
	"fmt"
	"time"

	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
)

// Index names one of the indexes whose keys end in a log position, which
// retention prunes.
type Index int

const (
	// PendingIndex holds the pending events of users not yet grouped.
	PendingIndex Index = iota
	// TimelineIndex holds every account's events by time.
	TimelineIndex
	// SubjectIndex holds every user's events.
	SubjectIndex
)

// Indexes lists the indexes retention prunes, in the order a sweep visits
// them.
var Indexes = []Index{PendingIndex, TimelineIndex, SubjectIndex}

// String is the index's bucket name.
func (i Index) String() string { return string(i.bucket()) }

func (i Index) bucket() []byte {
	switch i {
	case PendingIndex:
		return bucketPending
	case TimelineIndex:
		return bucketAccounts
	default:
		return bucketSubjects
	}
}

func (w *Writer) index(i Index) *bbolt.Bucket {
	switch i {
	case PendingIndex:
		return w.pending
	case TimelineIndex:
		return w.accounts
	default:
		return w.subjects
	}
}

// Prune examines up to max rows of index i after the key after (nil: from
// the start), deletes those whose log record is older than first, the log's
// first retained offset of each partition, and returns the key to continue
// from, nil when the pass is complete. Flush staged rows first, so that
// the rows of records retention removed are all in the index.
func (w *Writer) Prune(i Index, after []byte, first []uint64, max int) (next []byte, deleted int, err error) {
	b := w.index(i)
	var stale [][]byte
	c := b.Cursor()
	k, _ := c.First()
	if after != nil {
		k, _ = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, _ = c.Next()
		}
	}
	for n := 0; k != nil && n < max; k, _ = c.Next() {
		n++
		next = bytes.Clone(k)
		p, off, err := parsePosition(k)
		if err != nil {
			return nil, 0, err
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
			return nil, 0, fmt.Errorf("delete stale index row: %w", err)
		}
	}
	return next, len(stale), nil
}

// ExpireDedup examines up to max dedup ids after the key after (nil: from
// the start), deletes those first seen before cutoff and returns the key to
// continue from, nil when the pass is complete.
func (w *Writer) ExpireDedup(after []byte, cutoff time.Time, max int) (next []byte, deleted int, err error) {
	limit := uint64(cutoff.UnixNano())
	b := w.dedup
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
	for ; k != nil && n < max; k, v = c.Next() {
		n++
		if pkgstore.ParseU64(v) < limit {
			expired = append(expired, bytes.Clone(k))
		}
		next = bytes.Clone(k)
	}
	if k == nil {
		next = nil
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return nil, 0, fmt.Errorf("delete expired dedup id: %w", err)
		}
	}
	return next, len(expired), nil
}
