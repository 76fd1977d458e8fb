package app

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// What routing does with an account's commercial status and with repeated
// handoffs: closing a churned account's open work, refusing new handoffs
// for it until it is won back, and folding a handoff into the pending one
// of the same type and account.

// CloseReasonChurned is Assignment.close_reason for an assignment closed
// because its account churned.
const CloseReasonChurned = "churned"

// CloseReasonCleared is Assignment.close_reason for a RISK or RENEWAL
// handoff closed because every health signal of its kind on the account
// closed: the risk cleared, or the renewal window passed.
const CloseReasonCleared = "signal_cleared"

// errChurned matches the error RouteTx returns for a churned account.
var errChurned = errors.New("account churned")

// churnedError refuses a handoff for a churned account; it is a failed
// precondition for API callers and errChurned for the consumers, which
// skip it.
type churnedError struct{ account string }

func (e *churnedError) Error() string {
	return fmt.Sprintf("account %q is churned: routing opens no handoffs for it until it is won back", e.account)
}

func (e *churnedError) Is(target error) bool {
	return target == errChurned || target == apierr.ErrFailedPrecondition
}

// skipChurned drops the error of a handoff refused because its account is
// churned: a consumer applying upstream records has nothing to route then.
func skipChurned(err error) error {
	if errors.Is(err, errChurned) {
		return nil
	}
	return err
}

// accountStatus is the account's status derived, as in every service, from
// the aggregates routing keeps for it (pkg/domain/account).
func accountStatus(tx *store.Tx, accountID string) (account.Status, error) {
	agg, err := tx.Aggregates(accountID)
	if err != nil {
		return "", err
	}
	return agg.Status(), nil
}

// blockedWhenChurned reports whether a handoff of type t is refused for a
// churned account: everything but a manual handoff, which a person asked
// for by name.
func blockedWhenChurned(t routingv1.HandoffType) bool {
	return t != routingv1.HandoffType_HANDOFF_TYPE_MANUAL
}

// pending reports whether an assignment still waits for someone to act on
// it: a second handoff of the same type and account folds into it.
func pending(s routingv1.AssignmentState) bool {
	switch s {
	case routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED, routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN,
		routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED:
		return true
	}
	return false
}

// pendingDuplicate returns the assignment a new handoff r at at for
// accountID (or, without an account, the lead's email) would duplicate, or
// nil: one of the same type that is pending, or that was first touched at
// or after at (the owner acted on the account after this handoff's cause
// appeared: several risk reasons opening in the same second after a call
// would otherwise each open a handoff that the same call touches at once).
// Manual handoffs are never duplicates. The AE's companion of a risk
// handoff (rule "account_ae") duplicates only one of that same owner, so
// the account's two owners each keep theirs.
func (s *Service) pendingDuplicate(tx *store.Tx, r Route, accountID, email string, at time.Time) (*routingv1.Assignment, error) {
	if r.Type == routingv1.HandoffType_HANDOFF_TYPE_MANUAL || r.Type == routingv1.HandoffType_HANDOFF_TYPE_UNSPECIFIED {
		return nil, nil
	}
	var (
		ids []string
		err error
	)
	switch {
	case accountID != "":
		ids, err = tx.AssignmentsByAccount(accountID)
	case email != "":
		ids, err = tx.AssignmentsByEmail(email)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		a, err := tx.Assignment(id)
		if err != nil {
			return nil, err
		}
		if a.GetType() != r.Type {
			continue
		}
		touchedSince := a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED &&
			a.GetFirstTouchAt() != nil && !a.GetFirstTouchAt().AsTime().Before(at)
		if !pending(a.GetState()) && !touchedSince {
			continue
		}
		if r.Rule == "account_ae" && a.GetOwnerId() != r.OwnerID {
			continue
		}
		return a, nil
	}
	return nil, nil
}

// foldDuplicate records a suppressed duplicate handoff on the pending
// assignment a, at now, and ties the duplicate's idempotency key to it.
func (s *Service) foldDuplicate(tx *store.Tx, a *routingv1.Assignment, requestID string, now time.Time) (*routingv1.Assignment, error) {
	a.DuplicatesSuppressed++
	a.LastDuplicateAt = timestamppb.New(now)
	if _, err := tx.UpdateAssignment(a, a.GetOwnerId(), a.GetState()); err != nil {
		return nil, err
	}
	if requestID != "" {
		if err := tx.PutRequest(requestID, a.GetAssignmentId()); err != nil {
			return nil, err
		}
	}
	if err := s.publish(tx, a.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}}); err != nil {
		return nil, err
	}
	return a, nil
}

// closeChurned closes the account's pending assignments with reason
// "churned", at the churn's time (closePending). With openedBefore, only
// the work opened before the churn closes: the account was won back since,
// and what was opened after that is the new relationship's.
func (s *Service) closeChurned(tx *store.Tx, accountID string, at time.Time, openedBefore bool) error {
	return s.closePending(tx, accountID, at, CloseReasonChurned, func(a *routingv1.Assignment) bool {
		return !openedBefore || !a.GetCreatedAt().AsTime().After(at)
	})
}

// touchedAfter reports whether a was still pending at at and has been
// touched since: TOUCHED, opened by then, first touched after it.
func touchedAfter(a *routingv1.Assignment, at time.Time) bool {
	return a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED &&
		a.GetFirstTouchAt() != nil && a.GetFirstTouchAt().AsTime().After(at) &&
		!a.GetCreatedAt().AsTime().After(at)
}

// untouch takes back a's touches after at (touchedAfter): no first touch,
// the SLA clock as it stood at at (breached if it was due by then), and
// the state that goes with it.
func untouch(a *routingv1.Assignment, at time.Time) {
	a.FirstTouchAt, a.TimeToFirstTouch = nil, nil
	a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	if c := a.GetSla(); c != nil {
		c.MetAt, c.MetLate, c.MetLateAt, c.Paused = nil, false, nil, false
		if due := c.GetDueAt(); due != nil && !due.AsTime().After(at) {
			c.Breached, c.Warned_50, c.Warned_80 = true, true, true
			c.Used = c.GetAllowed()
			a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
		} else {
			c.Breached = false
		}
	}
}

// closePending closes the account's pending assignments that match with
// reason, at at: timers that fell due before it fire first (a breach that
// happened before stands), the rest are disarmed. TOUCHED assignments are
// already worked and stay as they are, unless they were worked only after
// at (touchedAfter): the close is judged as of at, whichever of the two
// records routing read first.
func (s *Service) closePending(tx *store.Tx, accountID string, at time.Time, reason string, match func(*routingv1.Assignment) bool) error {
	if now := s.clk.Now(); at.After(now) {
		at = now
	}
	ids, err := tx.AssignmentsByAccount(accountID)
	if err != nil {
		return err
	}
	freed := false
	for _, id := range ids {
		a, err := tx.Assignment(id)
		if err != nil {
			return err
		}
		if !match(a) {
			continue
		}
		stored := a.GetState()
		if !pending(a.GetState()) {
			if !touchedAfter(a, at) {
				continue
			}
			// Worked only after at: routing read the touch before the
			// record that closes the handoff (its event consumer ran
			// ahead). In time order the touch would have found it closed,
			// so it is closed as it was at at (the touch's SLA event stays
			// in the log, as what routing believed then).
			untouch(a, at)
		} else {
			if err := s.fireUntil(tx, id, at); err != nil {
				return err
			}
			if a, err = tx.Assignment(id); err != nil {
				return err
			}
			if !pending(a.GetState()) {
				continue
			}
			stored = a.GetState()
		}
		prevOwner, prevState := a.GetOwnerId(), stored
		freed = freed || store.Open(prevState)
		a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED
		a.CloseReason = reason
		if err := tx.Disarm(id); err != nil {
			return err
		}
		if _, err := tx.UpdateAssignment(a, prevOwner, prevState); err != nil {
			return err
		}
		if err := s.publish(tx, accountID, &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}}); err != nil {
			return err
		}
	}
	if freed {
		_, err := s.RerouteUnassigned(tx, rerouteOnFreed)
		return err
	}
	return nil
}

// queueKey orders the open queue: due time (assignments without a clock
// last), then id.
func queueKey(a *routingv1.Assignment) []byte {
	due := uint64(1<<64 - 1)
	if d := a.GetSla().GetDueAt(); d != nil {
		due = uint64(max(d.AsTime().UnixNano(), 0))
	}
	return append(pstore.U64(due), a.GetAssignmentId()...)
}

// inOpenQueue reports whether someone can still do a: OPEN, or BREACHED
// and not yet touched (a late touch moves it to TOUCHED).
func inOpenQueue(a *routingv1.Assignment) bool {
	return a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN ||
		a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
}

// openQueue pages the open queue matching f (its state ignored) by due
// time. The page key is queueKey of the last item. It reads every open and
// breached assignment of the filter's narrowest index, then sorts: a
// queue is the work in flight, not the history.
func openQueue(tx *store.Tx, f store.Filter, p store.Page) ([]*routingv1.Assignment, []byte, bool, error) {
	var all []*routingv1.Assignment
	collect := func(items []*routingv1.Assignment) {
		for _, a := range items {
			if inOpenQueue(a) {
				all = append(all, a)
			}
		}
	}
	everything := store.Page{Size: 1 << 30}
	if f.AccountID != "" || f.OwnerID != "" {
		items, _, _, err := tx.ListAssignments(f, everything)
		if err != nil {
			return nil, nil, false, err
		}
		collect(items)
	} else {
		for _, st := range []routingv1.AssignmentState{routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED} {
			g := f
			g.State = st
			items, _, _, err := tx.ListAssignments(g, everything)
			if err != nil {
				return nil, nil, false, err
			}
			collect(items)
		}
	}
	keys := make(map[string][]byte, len(all))
	for _, a := range all {
		keys[a.GetAssignmentId()] = queueKey(a)
	}
	slices.SortFunc(all, func(a, b *routingv1.Assignment) int {
		return bytes.Compare(keys[a.GetAssignmentId()], keys[b.GetAssignmentId()])
	})
	start := 0
	if len(p.After) > 0 {
		start = len(all)
		for i, a := range all {
			if bytes.Compare(keys[a.GetAssignmentId()], p.After) > 0 {
				start = i
				break
			}
		}
	}
	end := min(start+p.Size, len(all))
	out := all[start:end]
	var last []byte
	if len(out) > 0 {
		last = keys[out[len(out)-1].GetAssignmentId()]
	}
	return out, last, end < len(all), nil
}
