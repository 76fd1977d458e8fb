// Package identity holds the rules that say whom an event belongs to: its
// subject (the user or anonymous id it is about), the account it is
// attributed to, the log partition it goes to, and what group and alias
// calls change about earlier events.
//
// It does no I/O. The app reads the user map through the store, asks this
// package what follows, and has the store persist the answer in the same
// transaction.
package identity

import (
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Subject returns whom an event is about: its user id, else its anonymous id.
func Subject(ev *ingestionv1.Event) string {
	if ev.GetUserId() != "" {
		return ev.GetUserId()
	}
	return ev.GetAnonymousId()
}

// ContextGroup returns the account an event names itself: context.groupId,
// else the group_id of a group call. Empty means the event does not say, and
// the event goes to the account its subject was last grouped with, if any.
func ContextGroup(ev *ingestionv1.Event) string {
	if g := ev.GetContext().GetFields()["groupId"].GetStringValue(); g != "" {
		return g
	}
	if ev.GetType() == ingestionv1.EventType_EVENT_TYPE_GROUP {
		return ev.GetGroupId()
	}
	return ""
}

// Partition places an event of workspace ws in one of n partitions: by
// account, else by its subject, so that the events of a user not yet
// attributed stay in order.
func Partition(ws, account, subject string, n uint32) uint32 {
	if account != "" {
		return stream.Partition(ws, account, n)
	}
	return stream.Partition(ws, "user:"+subject, n)
}

// Reattribute turns a pending event into its re-attributed copy: attributed
// to account and marked as re-attributed, so that consumers can tell it from
// the original, which stays in the log as it was.
func Reattribute(ev *ingestionv1.Event, account string) {
	ev.AccountId = account
	ev.Reattributed = true
}

// Kind is what a Step changes.
type Kind int

const (
	// MapUser records that Subject now belongs to Account: later events of
	// Subject without a group of their own are attributed to it.
	MapUser Kind = iota + 1
	// ReattributePending logs a copy of every pending event of From
	// attributed to Account (see Reattribute), indexed under Subject, and
	// drops them from the pending events.
	ReattributePending
	// MovePending moves the pending events of From to Subject, so that a
	// later group call for Subject finds them.
	MovePending
)

func (k Kind) String() string {
	switch k {
	case MapUser:
		return "map user"
	case ReattributePending:
		return "reattribute pending"
	case MovePending:
		return "move pending"
	}
	return "unknown"
}

// Step is one change an identity call makes, to be applied in order.
type Step struct {
	Kind Kind
	// Subject is the user mapped (MapUser), or the one the moved events
	// are indexed under (ReattributePending, MovePending).
	Subject string
	// From is the subject whose pending events move (ReattributePending,
	// MovePending).
	From string
	// Account is the account mapped or attributed to (MapUser,
	// ReattributePending).
	Account string
}

// Users looks up the account subject was last grouped with; ok is false
// when it never was.
type Users func(subject string) (account string, ok bool)

// Changes returns, in the order they must be applied, the changes an event
// of subject (Subject(ev)) makes to the user map and to pending events: a
// group call maps its subject to the group and re-attributes the subject's
// pending events; an alias call merges the previous identity into subject.
// Other events, and events without a subject, change nothing (nil).
func Changes(ev *ingestionv1.Event, subject string, users Users) []Step {
	if subject == "" {
		return nil
	}
	switch ev.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_GROUP:
		return group(nil, subject, ev.GetGroupId())
	case ingestionv1.EventType_EVENT_TYPE_ALIAS:
		return alias(ev.GetPreviousId(), subject, users)
	}
	return nil
}

// group maps subject to account and re-attributes the subject's pending
// events.
func group(steps []Step, subject, account string) []Step {
	return append(steps,
		Step{Kind: MapUser, Subject: subject, Account: account},
		Step{Kind: ReattributePending, From: subject, Subject: subject, Account: account})
}

// alias merges the identity previous into subject (Segment's alias call,
// typically an anonymous id becoming a known user): subject inherits
// previous's account if it has none, and previous's pending events follow
// subject, re-attributed at once if subject has an account.
func alias(previous, subject string, users Users) []Step {
	if previous == subject {
		return nil
	}
	var steps []Step
	account, _ := users(subject)
	if account == "" {
		if a, ok := users(previous); ok {
			// subject inherits the account, so its own pending events
			// (this alias call among them) are attributed now too.
			steps = group(steps, subject, a)
			account = a
		}
	}
	if account != "" {
		return append(steps, Step{Kind: ReattributePending, From: previous, Subject: subject, Account: account})
	}
	// Neither is grouped yet: move the pending events so that a later
	// group call for subject finds them.
	return append(steps, Step{Kind: MovePending, From: previous, Subject: subject})
}
