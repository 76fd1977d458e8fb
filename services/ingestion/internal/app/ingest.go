package app

import (
	"context"
	"fmt"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/identity"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// prepared is one event of Ingest with everything that can be computed
// before the write transaction: the transaction runs on the single committer
// goroutine shared by all callers, so it should do little besides bbolt puts.
type prepared struct {
	ev *ingestionv1.Event
	// subject is identity.Subject(ev); group is identity.ContextGroup(ev).
	subject, group string
	// account is the guessed account (group, else the user map as read
	// before the transaction); part and rec are the partition and the
	// encoded record (with its staged index rows) for that guess.
	account string
	part    uint32
	rec     store.Record
	// dedupKey is the key of the message id; userKey the key of the
	// subject in the user map when the account comes from it (group is
	// empty).
	dedupKey, userKey []byte
}

// Ingest deduplicates, attributes and logs validated events of workspace ws
// in one transaction shared with concurrent callers, and returns, once they
// are durable, where each event was logged: nil for a duplicate, an event
// whose message id was seen within the dedup window (earlier, or earlier in
// the same batch). Events must have a message id; Ingest sets their
// workspace and account_id.
func (a *App) Ingest(ctx context.Context, ws string, events []*ingestionv1.Event) ([]*commonv1.LogPosition, error) {
	if err := a.checkLag(); err != nil {
		return nil, err
	}
	now := a.opts.Clock.Now()
	// Encode outside the write transaction. The account of an event
	// without context.groupId is guessed from the user map in a concurrent
	// read transaction; the write transaction re-encodes only the events
	// whose guess turned out stale (a group call in between).
	var enc store.Encoder
	pre := make([]prepared, len(events))
	needUsers := false
	for i, ev := range events {
		ev.Workspace = ws
		g := identity.ContextGroup(ev)
		pr := &pre[i]
		*pr = prepared{ev: ev, subject: identity.Subject(ev), group: g, account: g, dedupKey: enc.DedupKey(ws, ev.GetMessageId())}
		if g == "" {
			pr.userKey = enc.UserKey(ws, pr.subject)
			needUsers = true
		}
	}
	if needUsers {
		if err := a.db.View(func(tx *pkgstore.Tx) error {
			users := a.st.Users(tx)
			for i := range pre {
				if pre[i].group == "" {
					pre[i].account = users.Account(pre[i].userKey)
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("look up user accounts: %w", err)
		}
	}
	for i := range pre {
		pr := &pre[i]
		pr.ev.AccountId = pr.account
		rec, err := enc.Record(ws, pr.subject, pr.ev)
		if err != nil {
			return nil, err
		}
		pr.rec = rec
		pr.part = identity.Partition(ws, pr.account, pr.subject, a.opts.Partitions)
	}
	stamp := store.Stamp(now)
	// One allocation for every position: each run fills in those of the
	// events it accepts, and only the committed run's result points into it.
	positions := make([]commonv1.LogPosition, len(events))
	out, err := writer(ctx, a, func(w *store.Writer) ([]*commonv1.LogPosition, error) {
		out := make([]*commonv1.LogPosition, len(pre))
		for i := range pre {
			pr := &pre[i]
			ev := pr.ev
			if w.Seen(pr.dedupKey, now, a.opts.DedupWindow) {
				continue // a duplicate: no position
			}
			if err := w.Remember(pr.dedupKey, stamp); err != nil {
				return nil, err
			}
			subject := pr.subject
			account, part, rec := pr.account, pr.part, &pr.rec
			if pr.group == "" {
				if acc, changed := w.AccountChanged(pr.userKey, pr.account); changed {
					account = acc
					ev.AccountId = account
					r, err := store.NewRecord(ws, subject, ev)
					if err != nil {
						return nil, err
					}
					part, rec = identity.Partition(ws, account, subject, a.opts.Partitions), &r
				}
			}
			ev.AccountId = account
			off, err := w.Append(part, rec)
			if err != nil {
				return nil, err
			}
			pos := &positions[i]
			pos.Partition, pos.Offset = part, off
			out[i] = pos
			if account == "" {
				// Not attributed yet: kept until a group or alias call
				// names the subject's account.
				if err := w.PutPending(ws, subject, part, off, rec); err != nil {
					return nil, err
				}
			}
			if err := a.applyIdentity(w, ws, subject, ev); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit batch of %d events: %w", len(events), err)
	}
	if err := a.replicated(ctx); err != nil {
		return nil, fmt.Errorf("batch of %d events: %w", len(events), err)
	}
	return out, nil
}

// applyIdentity persists what a group or alias call of subject changes
// (identity.Changes) in w.
func (a *App) applyIdentity(w *store.Writer, ws, subject string, ev *ingestionv1.Event) error {
	steps := identity.Changes(ev, subject, func(s string) (string, bool) { return w.UserAccount(ws, s) })
	for _, st := range steps {
		var err error
		switch st.Kind {
		case identity.MapUser:
			err = w.SetUserAccount(ws, st.Subject, st.Account)
		case identity.ReattributePending:
			err = a.reattribute(w, ws, st.From, st.Subject, st.Account)
		case identity.MovePending:
			err = w.MovePending(ws, st.From, st.Subject)
		default:
			err = fmt.Errorf("unknown identity change %v", st.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// reattribute logs, for each pending event of from, a copy attributed to
// account (identity.Reattribute), indexed under subject, and drops the
// pending rows.
func (a *App) reattribute(w *store.Writer, ws, from, subject, account string) error {
	pending, err := w.PendingEvents(ws, from)
	if err != nil {
		return err
	}
	for _, p := range pending {
		identity.Reattribute(p.Event, account)
		rec, err := store.NewRecord(ws, subject, p.Event)
		if err != nil {
			return err
		}
		if _, err := w.Append(identity.Partition(ws, account, subject, a.opts.Partitions), &rec); err != nil {
			return err
		}
		if err := w.DeletePending(p); err != nil {
			return err
		}
	}
	return nil
}
