package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cairn-dev/cairn/pkg/stream"
	"go.etcd.io/bbolt"
)

// UnmapUsers examines up to max user rows of ws after the key after (nil:
// from the first), deletes those mapped to account, and returns the key to
// continue from, nil when all users of ws were examined.
func (w *Writer) UnmapUsers(ws, account string, after []byte, max int) (next []byte, err error) {
	prefix := key(ws)
	b := w.users
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
		if n == max {
			return next, deleteKeys(b, drop) // next names the last row examined
		}
		n++
		next = bytes.Clone(k)
		if string(v) == account {
			drop = append(drop, bytes.Clone(k))
		}
	}
	return nil, deleteKeys(b, drop)
}

func deleteKeys(b *bbolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// DeleteEvents deletes up to max events of a user (userID) or an account
// (accountID) of ws, as the subject or the timeline index lists them: their
// log records, index rows, dedup ids and pending rows. It returns how many
// it deleted and sets touched[p] for every partition p it deleted records
// of. Flush staged rows first, so that the indexes list every event.
func (w *Writer) DeleteEvents(ws, userID, accountID string, max int, touched map[uint32]bool) (int, error) {
	idx, prefix := w.subjects, key(ws, userID)
	if accountID != "" {
		idx, prefix = w.accounts, key(ws, accountID)
	}
	var keys, vals [][]byte
	c := idx.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < max; k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		vals = append(vals, bytes.Clone(v))
	}
	for i, k := range keys {
		var e entry
		if err := e.unmarshal(vals[i]); err != nil {
			return 0, err
		}
		p, off, err := parsePosition(k)
		if err != nil {
			return 0, err
		}
		if err := w.s.log.DeleteTx(w.ptx, p, off); err != nil && !errors.Is(err, stream.ErrCompacted) {
			return 0, fmt.Errorf("delete log record %d/%d: %w", p, off, err)
		}
		if err := w.queuePurge(p, off); err != nil {
			return 0, err
		}
		touched[p] = true
		if err := w.dedup.Delete(key(ws, e.MessageID)); err != nil {
			return 0, fmt.Errorf("delete dedup id: %w", err)
		}
		if e.Account != "" {
			if err := w.accounts.Delete(accountKey(ws, e.Account, e.Time, p, off)); err != nil {
				return 0, fmt.Errorf("delete timeline row: %w", err)
			}
		}
		if e.Subject != "" {
			if err := w.subjects.Delete(subjectKey(ws, e.Subject, p, off)); err != nil {
				return 0, fmt.Errorf("delete subject row: %w", err)
			}
			if err := w.pending.Delete(subjectKey(ws, e.Subject, p, off)); err != nil {
				return 0, fmt.Errorf("delete pending event: %w", err)
			}
		}
	}
	return len(keys), nil
}

// ForgetUser deletes what is left of userID of ws once its events are
// deleted: its account mapping and any pending rows still indexed under it.
func (w *Writer) ForgetUser(ws, userID string) error {
	if err := w.users.Delete(key(ws, userID)); err != nil {
		return fmt.Errorf("delete user account: %w", err)
	}
	// Pending rows moved here by an alias are indexed under the previous
	// id, so drop whatever is left under the user.
	pk, _ := scanPrefix(w.pending, key(ws, userID))
	for _, k := range pk {
		if err := w.pending.Delete(k); err != nil {
			return fmt.Errorf("delete pending event: %w", err)
		}
	}
	return nil
}
