package app

import (
	"context"
	"fmt"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/services/ingestion/internal/identity"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// deleteChunk is how far one transaction of DeleteSubject got.
type deleteChunk struct {
	// done is set once the subject's last events are deleted and the
	// tombstones logged.
	done bool
	// events is the number of events deleted.
	events int
	// touched marks the partitions whose records were deleted.
	touched map[uint32]bool
	// tombstone is the tombstone's position in the subject's partition.
	tombstone *commonv1.LogPosition
}

// DeleteSubject forgets a user (userID) or an account (accountID) of ws: its
// log records, index rows, dedup ids, pending events and user mapping are
// deleted, in chunks of DeleteChunk events per transaction, and tombstones
// are logged with the last chunk. It returns the number of log records
// removed and where the tombstone was logged in the subject's own
// partition. Tombstones are also logged in every other partition that held
// deleted events, so that each consumer sees one after the events.
func (a *App) DeleteSubject(ctx context.Context, ws, userID, accountID string) (deleted int64, tombstone *commonv1.LogPosition, err error) {
	if (userID == "") == (accountID == "") {
		return 0, nil, apierr.Field("user_id", "exactly one of user_id and account_id is required")
	}
	if accountID != "" {
		// Forget which users belonged to the account, so that their later
		// events are not attributed to it again.
		var after []byte
		for {
			next, err := writer(ctx, a, func(w *store.Writer) ([]byte, error) {
				return w.UnmapUsers(ws, accountID, after, 8*a.opts.DeleteChunk)
			})
			if err != nil {
				return 0, nil, fmt.Errorf("unmap users of account %q: %w", accountID, err)
			}
			if after = next; after == nil {
				break
			}
		}
	}
	home := identity.Partition(ws, accountID, userID, a.opts.Partitions)
	touched := map[uint32]bool{home: true}
	for {
		c, err := writer(ctx, a, func(w *store.Writer) (deleteChunk, error) {
			c := deleteChunk{touched: map[uint32]bool{}}
			// Index everything logged so far, including events of earlier
			// members of this very transaction.
			if _, err := w.FlushStaged(0); err != nil {
				return c, err
			}
			n, err := w.DeleteEvents(ws, userID, accountID, a.opts.DeleteChunk, c.touched)
			if err != nil {
				return c, err
			}
			c.events = n
			if n == a.opts.DeleteChunk {
				return c, nil
			}
			if userID != "" {
				if err := w.ForgetUser(ws, userID); err != nil {
					return c, err
				}
			}
			tombstone, err := store.Tombstone(ws, userID, accountID, a.opts.Clock.Now())
			if err != nil {
				return c, err
			}
			for p := range a.opts.Partitions {
				if !touched[p] && !c.touched[p] {
					continue
				}
				off, err := w.AppendTombstone(p, tombstone)
				if err != nil {
					return c, err
				}
				if p == home {
					c.tombstone = &commonv1.LogPosition{Partition: p, Offset: off}
				}
			}
			c.done = true
			return c, nil
		})
		if err != nil {
			return 0, nil, fmt.Errorf("delete subject: %w", err)
		}
		deleted += int64(c.events)
		for p := range c.touched {
			touched[p] = true
		}
		if c.done {
			if err := a.replicated(ctx); err != nil {
				return 0, nil, fmt.Errorf("delete subject: %w", err)
			}
			if err := a.purge(ctx); err != nil {
				return 0, nil, fmt.Errorf("delete subject: %w", err)
			}
			return deleted, c.tombstone, nil
		}
	}
}
