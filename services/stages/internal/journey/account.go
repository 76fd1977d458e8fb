package journey

import (
	"slices"
	"strconv"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"google.golang.org/protobuf/proto"
)

// This file holds the pure rules that turn an evaluation into an account's
// stored journey state; the application applies them and stores the result.

// HistoryLimit bounds the transitions kept per account; funnels use visits,
// so older history is only lost from GetAccountJourney.
const HistoryLimit = 100

// Behavioural reports whether an event can place an account. Identify and
// group calls carry traits, not behaviour: an account is first placed by
// its first track, page or screen event, so that a group call sent just
// before "contract_signed" does not place it at the top of the funnel.
func Behavioural(ev *ingestionv1.Event) bool {
	switch ev.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_TRACK, ingestionv1.EventType_EVENT_TYPE_PAGE, ingestionv1.EventType_EVENT_TYPE_SCREEN:
		return true
	}
	return false
}

// StateOf is the evaluation state of an account's journey: its stage, when
// it entered it, and the drop-off criteria of that stage whose signals are
// open.
func StateOf(aj *stagesv1.AccountJourney) State {
	state := State{Stage: aj.GetStage()}
	if aj.GetEnteredAt() != nil {
		state.EnteredAt = aj.GetEnteredAt().AsTime()
	}
	for _, s := range aj.GetOpenSignals() {
		if s.GetAttributes()["stage"] == aj.GetStage() {
			state.Open = append(state.Open, s.GetAttributes()["criterion"])
		}
	}
	return state
}

// AppendHistory records a transition in the account's history, keeping the
// last HistoryLimit. The history entry keeps the criteria's names and
// results but not their expressions, which the definition version has, so
// that state stays small to decode and encode on every event; the
// published record keeps everything.
func AppendHistory(aj *stagesv1.AccountJourney, tr *stagesv1.Transition) {
	h := proto.Clone(tr).(*stagesv1.Transition)
	h.Workspace, h.AccountId = "", ""
	for _, c := range h.Criteria {
		c.Expr, c.Description = "", ""
	}
	aj.History = append(aj.History, h)
	if len(aj.History) > HistoryLimit {
		aj.History = append(aj.History[:0], aj.History[len(aj.History)-HistoryLimit:]...)
	}
}

// SyncTraits copies the account traits shown by queries into the journey state.
func SyncTraits(aj *stagesv1.AccountJourney, a *account.Aggregates) {
	if aj.Traits == nil {
		aj.Traits = map[string]string{}
	}
	for _, k := range []string{"name", "plan", "segment", "owner", "industry"} {
		if v := a.Traits[k]; v != "" {
			aj.Traits[k] = v
		}
	}
	if a.Seats > 0 {
		aj.Traits["seats"] = strconv.FormatInt(a.Seats, 10)
	}
	if a.ARR > 0 {
		aj.Traits["arr"] = strconv.FormatFloat(a.ARR, 'f', -1, 64)
	}
}

// AccountFilter selects placed accounts of a journey; empty fields match
// everything.
type AccountFilter struct {
	// Stage is the current stage.
	Stage string
	// Signal is an open signal's reason or drop-off criterion.
	Signal string
	// Segment and Owner are account traits.
	Segment, Owner string
	// Statuses are the account statuses to list; empty lists the live
	// accounts (every placed account: a churned account is in no stage).
	Statuses []account.Status
	// Milestones asks for each listed account's milestones as well
	// (stagesv1.AccountMilestones); it filters nothing.
	Milestones bool
}

// Owner is the account's owner of record (account.OwnerOf its traits).
// Lists show it and the owner filter matches it.
func Owner(aj *stagesv1.AccountJourney) string { return account.OwnerOf(aj.GetTraits()) }

// Matches reports whether the account, whose status is status, matches
// every field set: with no statuses, a placed account that is live; with
// statuses, a placed account with one of them, or a churned account (in no
// stage) when churned is one of them.
func (f AccountFilter) Matches(aj *stagesv1.AccountJourney, status account.Status) bool {
	if len(f.Statuses) == 0 {
		if aj.GetStage() == "" || status == account.StatusChurned {
			return false
		}
	} else if !slices.Contains(f.Statuses, status) || (aj.GetStage() == "" && status != account.StatusChurned) {
		return false
	}
	if f.Stage != "" && aj.GetStage() != f.Stage {
		return false
	}
	if f.Segment != "" && aj.GetTraits()["segment"] != f.Segment {
		return false
	}
	if f.Owner != "" && Owner(aj) != f.Owner {
		return false
	}
	if f.Signal != "" {
		for _, sg := range aj.GetOpenSignals() {
			if sg.GetReason() == f.Signal || sg.GetAttributes()["criterion"] == f.Signal {
				return true
			}
		}
		return false
	}
	return true
}

// SignalFilter selects drop-off signals; empty fields match everything.
type SignalFilter struct {
	// AccountID is the account.
	AccountID string
	// State is open or closed.
	State commonv1.SignalState
	// Reason is the signal's reason.
	Reason string
}

// Matches reports whether the signal matches every field set.
func (f SignalFilter) Matches(s *commonv1.Signal) bool {
	return (f.AccountID == "" || s.GetAccountId() == f.AccountID) &&
		(f.State == commonv1.SignalState_SIGNAL_STATE_UNSPECIFIED || s.GetState() == f.State) &&
		(f.Reason == "" || s.GetReason() == f.Reason)
}
