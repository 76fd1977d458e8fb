package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// TouchRetention is how long before an account's newest touch its older
// touches are kept. A handoff is credited the touches recorded since it
// was opened (app's touchedSince), and during a bulk load or a backlog
// routing reads ingestion's log up to a year ahead of health's, so a touch
// must outlive at least that gap; an account touched daily keeps about 400
// keys.
const TouchRetention = 400 * 24 * time.Hour

// Touch is one CRM touch of an account.
type Touch struct {
	// At is the event time, in Unix seconds.
	At int64 `json:"at"`
	// Kind is "contacted" or "meeting_booked".
	Kind string `json:"kind"`
}

// touchPrefix is the key prefix of an account's touches: the id's length
// first, so one account's prefix is never another's.
func touchPrefix(accountID string) []byte {
	k := binary.AppendUvarint(nil, uint64(len(accountID)))
	return append(k, accountID...)
}

func touchKey(accountID string, at int64, kind string) []byte {
	k := binary.BigEndian.AppendUint64(touchPrefix(accountID), uint64(at))
	return append(k, kind...)
}

// AddTouch records a touch of an account at at (Unix seconds) and drops
// the account's touches older than TouchRetention before its newest.
// The same touch recorded twice is kept once.
func (t *Tx) AddTouch(accountID string, at int64, kind string) error {
	if at < 0 {
		at = 0 // before 1970: kept first, in order
	}
	if err := t.put("touches", touchKey(accountID, at, kind), []byte{}); err != nil {
		return err
	}
	b, err := t.bucket("touches")
	if err != nil {
		return err
	}
	prefix := touchPrefix(accountID)
	c := b.Cursor()
	// The newest touch is the last key of the prefix.
	k, _ := c.Seek(touchKey(accountID, 1<<63-1, ""))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	newest, ok := parseTouch(prefix, k)
	if !ok {
		return nil
	}
	cut := newest.At - int64(TouchRetention/time.Second)
	for k, _ := c.Seek(prefix); k != nil; k, _ = c.Seek(prefix) {
		tc, ok := parseTouch(prefix, k)
		if !ok || tc.At >= cut {
			return nil
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("delete touch: %w", err)
		}
	}
	return nil
}

func parseTouch(prefix, k []byte) (Touch, bool) {
	if len(k) < len(prefix)+8 || string(k[:len(prefix)]) != string(prefix) {
		return Touch{}, false
	}
	at := int64(binary.BigEndian.Uint64(k[len(prefix):]))
	return Touch{At: at, Kind: string(k[len(prefix)+8:])}, true
}

// TouchesSince returns an account's recorded touches at or after since
// (Unix seconds), oldest first, at most limit of them.
func (t *Tx) TouchesSince(accountID string, since int64, limit int) ([]Touch, error) {
	b, err := t.bucket("touches")
	if err != nil || b == nil {
		return nil, err
	}
	prefix := touchPrefix(accountID)
	var out []Touch
	c := b.Cursor()
	for k, _ := c.Seek(touchKey(accountID, max(since, 0), "")); k != nil && len(out) < limit; k, _ = c.Next() {
		tc, ok := parseTouch(prefix, k)
		if !ok {
			break
		}
		out = append(out, tc)
	}
	return out, nil
}

// HasTouches reports whether any touch of the account is recorded.
func (t *Tx) HasTouches(accountID string) (bool, error) {
	b, err := t.bucket("touches")
	if err != nil || b == nil {
		return false, err
	}
	prefix := touchPrefix(accountID)
	k, _ := b.Cursor().Seek(prefix)
	_, ok := parseTouch(prefix, k)
	return ok, nil
}

// DeleteTouches forgets every touch of an account.
func (t *Tx) DeleteTouches(accountID string) error {
	b, err := t.bucket("touches")
	if err != nil || b == nil {
		return err
	}
	prefix := touchPrefix(accountID)
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil; k, _ = c.Seek(prefix) {
		if _, ok := parseTouch(prefix, k); !ok {
			return nil
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("delete touch: %w", err)
		}
	}
	return nil
}
