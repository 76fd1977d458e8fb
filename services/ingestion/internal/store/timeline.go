package store

import (
	"bytes"
	"time"

	pkgstore "github.com/cairn-dev/cairn/pkg/store"
)

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

// Position is where an event is logged.
type Position struct {
	Partition uint32
	Offset    uint64
}

// Timeline returns the log positions of an account's events that match q,
// newest first, as the timeline index holds them in tx (flush staged rows
// first to include every event logged so far). next is the key to pass as
// After for the following page, nil when there are no more.
func (s *Store) Timeline(tx *pkgstore.Tx, q TimelineQuery) (hits []Position, next []byte, err error) {
	prefix := key(q.Workspace, q.Account)
	b := tx.Bolt().Bucket(bucketAccounts)
	if b == nil {
		return nil, nil, nil
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
			return hits, next, nil // next names the last row examined
		}
		scanned++
		next = bytes.Clone(k[len(prefix):])
		var e entry
		if err := e.unmarshal(v); err != nil {
			return nil, nil, err
		}
		if (q.Name != "" && e.Name != q.Name) || (q.Source != "" && e.Source != q.Source) ||
			(!q.Start.IsZero() && e.Time.Before(q.Start)) || (!q.End.IsZero() && !e.Time.Before(q.End)) {
			continue
		}
		p, off, err := parsePosition(k)
		if err != nil {
			return nil, nil, err
		}
		hits = append(hits, Position{p, off})
	}
	return hits, nil, nil
}
