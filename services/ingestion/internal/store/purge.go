package store

import (
	"fmt"

	pkgstore "github.com/cairn-dev/cairn/pkg/store"
)

// bucketPurge lists the log positions deleted here (right to be forgotten)
// that the replicated copy of the log still holds, when the log is served
// from one (Options.Purge): written in the deleting transaction, removed
// once the copy is deleted too, so a crash in between only delays it.
var bucketPurge = []byte("purge") // position -> empty

// queuePurge records that (p, off) must also be deleted from the
// replicated copy.
func (w *Writer) queuePurge(p uint32, off uint64) error {
	if !w.s.purge {
		return nil
	}
	b, err := pkgstore.Bucket(w.tx, string(bucketPurge))
	if err != nil {
		return err
	}
	if err := b.Put(position(nil, p, off), nil); err != nil {
		return fmt.Errorf("queue purge of %d/%d: %w", p, off, err)
	}
	return nil
}

// Purges returns up to max positions waiting to be deleted from the
// replicated copy, in position order.
func (s *Store) Purges(tx *pkgstore.Tx, max int) ([]Position, error) {
	b := tx.Bolt().Bucket(bucketPurge)
	if b == nil {
		return nil, nil
	}
	var out []Position
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
		p, off, err := parsePosition(k)
		if err != nil {
			return nil, err
		}
		out = append(out, Position{Partition: p, Offset: off})
	}
	return out, nil
}

// Purged removes positions deleted from the replicated copy from the
// queue.
func (w *Writer) Purged(ps []Position) error {
	b := w.tx.Bucket(bucketPurge)
	if b == nil {
		return nil
	}
	for _, ps := range ps {
		if err := b.Delete(position(nil, ps.Partition, ps.Offset)); err != nil {
			return fmt.Errorf("dequeue purge: %w", err)
		}
	}
	return nil
}
