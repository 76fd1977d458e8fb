// Package insight holds the pure rules of the stages service's account
// insights: the moments of truth after a contract (first login, first value)
// and an account's buying committee with the stuck signals of its buying
// process. It reads account aggregates and does no I/O.
package insight

import (
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// ContractEvents are the event names that start a contract (docs/journeys.md).
func ContractEvents() []string {
	return []string{"contract_signed", "crm.closed_won", "billing.subscription_started"}
}

const day = 24 * time.Hour

// firstOf is the earliest first-seen time of any of names, 0 when none was seen.
func firstOf(a *account.Aggregates, names []string) int64 {
	var first int64
	for _, n := range names {
		if sp, ok := a.Events[n]; ok && (first == 0 || sp.First < first) {
			first = sp.First
		}
	}
	return first
}

// ContractStart is the contract start trait, else the first contract
// event, in Unix seconds; 0 when the account has no contract.
func ContractStart(a *account.Aggregates) int64 {
	if a.ContractStart != 0 {
		return a.ContractStart
	}
	return firstOf(a, ContractEvents())
}

// Moment is a milestone an account should reach within a time of its contract.
type Moment struct {
	// Name and Description are reported.
	Name, Description string
	// Events are the event names that reach it.
	Events []string
	// Within is the time allowed after the contract start.
	Within time.Duration
}

// Moments are the moments of truth reported.
func Moments() []Moment {
	return []Moment{
		{"first_login_7d", "First login within 7 days of the contract.", []string{"login", "logged_in", "signed_in", "user_logged_in"}, 7 * day},
		{"first_value_45d", "First value (activation) within 45 days of the contract.", []string{"activated", "first_value"}, 45 * day},
	}
}

// FirstValue is when the account first reached the first-value
// (activation) moment, the one Moments calls first_value_45d, in Unix
// seconds; 0 when it has not.
func FirstValue(a *account.Aggregates) int64 {
	for _, m := range Moments() {
		if m.Name == firstValueMoment {
			return firstOf(a, m.Events)
		}
	}
	return 0
}

// firstValueMoment names the first-value moment among Moments.
const firstValueMoment = "first_value_45d"

// Count adds one account to the counts of ms, out[i] counting ms[i]: an
// account is eligible for a moment once its deadline has passed at now
// (Unix seconds) or it reached the moment. Accounts without a contract
// count nowhere.
func Count(out []*stagesv1.Moment, ms []Moment, a *account.Aggregates, now int64) {
	start := ContractStart(a)
	if start == 0 {
		return
	}
	for i, m := range ms {
		deadline := start + int64(m.Within/time.Second)
		first := firstOf(a, m.Events)
		reached := first != 0 && first <= deadline
		if reached || now >= deadline {
			out[i].Eligible++
		}
		if reached {
			out[i].Reached++
		}
	}
}

// engagedWithin is how recently a persona must have been seen to count as engaged.
const engagedWithin = 30 * day

// stuckRule raises a stuck signal when a process started and did not finish in time.
type stuckRule struct {
	reason, message string
	started         string
	finished        []string
	after           time.Duration
}

func stuckRules() []stuckRule {
	return []stuckRule{
		{"security_review_open_7d", "Security review open for more than 7 days.", "security_review_started", []string{"security_review_approved", "security_review_completed", "security_review_rejected"}, 7 * day},
		{"procurement_open_14d", "Procurement open for more than 14 days.", "procurement_started", []string{"po_raised", "procurement_completed"}, 14 * day},
		{"legal_review_open_14d", "Legal review open for more than 14 days.", "legal_review_started", []string{"legal_review_completed", "contract_signed"}, 14 * day},
	}
}

// Committee reports the personas engaged on an account at now and the
// stuck signals of its buying process.
func Committee(a *account.Aggregates, now time.Time) *stagesv1.GetBuyingCommitteeResponse {
	byRole := map[string]*stagesv1.Persona{}
	resp := &stagesv1.GetBuyingCommitteeResponse{}
	for _, role := range account.Personas() {
		p := &stagesv1.Persona{Role: role}
		byRole[role] = p
		resp.Personas = append(resp.Personas, p)
	}
	ids := make([]string, 0, len(a.Users))
	for id := range a.Users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		u := a.Users[id]
		p := byRole[account.PersonaOf(u)]
		p.UserIds = append(p.UserIds, id)
		if last := time.Unix(u.LastSeen, 0).UTC(); p.LastEngagedAt == nil || last.After(p.LastEngagedAt.AsTime()) {
			p.LastEngagedAt = timestamppb.New(last)
		}
	}
	for _, p := range resp.Personas {
		if p.LastEngagedAt == nil {
			p.DaysSinceEngaged = -1
			continue
		}
		since := now.Sub(p.LastEngagedAt.AsTime())
		if since < 0 {
			since = 0
		}
		p.DaysSinceEngaged = int32(since / day)
		p.Engaged = since <= engagedWithin
	}
	for _, r := range stuckRules() {
		sp, ok := a.Events[r.started]
		if !ok {
			continue
		}
		done := false
		for _, f := range r.finished {
			if fs, ok := a.Events[f]; ok && fs.Last >= sp.Last {
				done = true
			}
		}
		opened := time.Unix(sp.Last, 0).UTC()
		if done || now.Sub(opened) <= r.after {
			continue
		}
		resp.StuckSignals = append(resp.StuckSignals, &commonv1.Signal{
			Workspace: a.Workspace, AccountId: a.AccountID, SignalId: a.AccountID + ":stuck:" + r.reason,
			Kind: commonv1.SignalKind_SIGNAL_KIND_STUCK, Reason: r.reason, Message: r.message,
			State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(opened.Add(r.after)),
			Attributes: map[string]string{"started_at": opened.Format(time.RFC3339)},
		})
	}
	return resp
}
