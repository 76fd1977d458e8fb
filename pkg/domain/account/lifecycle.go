package account

import (
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

// Status is where an account is in its commercial life (the API's
// cairn.common.v1.AccountStatus, by name).
type Status string

// Statuses, in the order an account normally moves through them.
const (
	StatusProspect Status = "prospect"
	StatusTrial    Status = "trial"
	StatusCustomer Status = "customer"
	StatusChurned  Status = "churned"
	StatusWonBack  Status = "won_back"
)

// Live reports whether an account with status s belongs in live counts,
// ARR totals and work lists: everything but churned.
func (s Status) Live() bool { return s != StatusChurned && s != "" }

// Paying reports whether s is a paying status: customer or won back.
// Customer health, renewal and expansion signals are for these only.
func (s Status) Paying() bool { return s == StatusCustomer || s == StatusWonBack }

// Lifecycle events: the names that change an account's status (canonical
// names of the event vocabulary, pkg/domain/vocab).
var (
	// customerEvents make a prospect or trial a customer, and a churned
	// account won back.
	customerEvents = []string{eventClosedWon, eventSubscriptionStarted, eventContractUpdated, eventRenewed, eventTrialConverted}
	trialEvents    = []string{eventTrialStarted}
)

const (
	eventClosedWon      = "crm.closed_won"
	eventTrialStarted   = "trial_started"
	eventTrialConverted = "trial_converted"
)

// Change is one change of status.
type Change struct {
	Status Status
	// At is the event time, in Unix seconds.
	At int64
	// Event is the name of the event that caused it.
	Event string
}

// Lifecycle is an account's status, when it took it, and its history.
type Lifecycle struct {
	Status Status
	// Since is when the account took Status, in Unix seconds (0: unknown).
	Since int64
	// History lists every change, oldest first; the first is the account's
	// first status.
	History []Change
}

// Lifecycle derives the account's status from its events, the same way in
// every service:
//
//   - an account starts as a prospect (when first seen);
//   - trial_started makes a prospect a trial;
//   - the first of crm.closed_won, billing.subscription_started,
//     billing.contract_updated, billing.renewed or trial_converted makes it a
//     customer;
//   - billing.churned makes a customer churned, which is terminal until a
//     win-back: one of the customer events after the churn makes it won back
//     (and a later churn churned again).
//
// The aggregates keep the first and last time of each event name, so when
// an account paid again several times after one churn the win-back is
// dated by the earliest time kept after the churn (the event's first time
// when that is after the churn, else its last).
func (a *Aggregates) Lifecycle() Lifecycle {
	var h []Change
	start := a.CreatedAt
	if start == 0 || (a.FirstEventAt != 0 && a.FirstEventAt < start) {
		start = a.FirstEventAt
	}
	h = append(h, Change{Status: StatusProspect, At: start})
	custAt, custEvent := a.firstOf(customerEvents, 0)
	if trialAt, ev := a.firstOf(trialEvents, 0); trialAt != 0 && (custAt == 0 || trialAt < custAt) {
		h = append(h, Change{Status: StatusTrial, At: trialAt, Event: ev})
	}
	churns := a.churnTimes()
	if custAt == 0 && len(churns) > 0 {
		// A churn with no recorded purchase (history imported from the
		// churn on): the account was a customer before it.
		custAt, custEvent = churns[0], ""
	}
	if custAt != 0 {
		h = append(h, Change{Status: StatusCustomer, At: custAt, Event: custEvent})
		for _, c := range churns {
			if c < h[len(h)-1].At || h[len(h)-1].Status == StatusChurned {
				continue // already churned, or a churn from before the purchase
			}
			h = append(h, Change{Status: StatusChurned, At: c, Event: eventChurned})
			back, ev := a.firstOf(customerEvents, c)
			if back == 0 {
				break
			}
			h = append(h, Change{Status: StatusWonBack, At: back, Event: ev})
		}
	}
	last := h[len(h)-1]
	return Lifecycle{Status: last.Status, Since: last.At, History: h}
}

// Status is Lifecycle().Status.
func (a *Aggregates) Status() Status { return a.Lifecycle().Status }

// firstOf returns the earliest time after `after` (exclusive; 0: any) that
// one of names was seen, and that name; 0 when none was.
func (a *Aggregates) firstOf(names []string, after int64) (int64, string) {
	var at int64
	var name string
	for _, n := range names {
		sp, ok := a.Events[n]
		if !ok {
			continue
		}
		t := sp.First
		if t <= after {
			t = sp.Last
		}
		if t <= after {
			continue
		}
		if at == 0 || t < at {
			at, name = t, n
		}
	}
	return at, name
}

// churnTimes lists the times of billing.churned, ascending.
func (a *Aggregates) churnTimes() []int64 {
	var out []int64
	for _, o := range a.Outcomes {
		if o.Kind == OutcomeChurned {
			out = append(out, o.At)
		}
	}
	if len(out) == 0 {
		if sp, ok := a.Events[eventChurned]; ok {
			out = append(out, sp.First)
			if sp.Last != sp.First {
				out = append(out, sp.Last)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return slices.Compact(out)
}

// Proto returns s as the API's enum.
func (s Status) Proto() commonv1.AccountStatus {
	switch s {
	case StatusProspect:
		return commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT
	case StatusTrial:
		return commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL
	case StatusCustomer:
		return commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER
	case StatusChurned:
		return commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED
	case StatusWonBack:
		return commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK
	}
	return commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED
}

// StatusOf is Status.Proto's inverse; an unknown value is "".
func StatusOf(s commonv1.AccountStatus) Status {
	for _, st := range []Status{StatusProspect, StatusTrial, StatusCustomer, StatusChurned, StatusWonBack} {
		if st.Proto() == s {
			return st
		}
	}
	return ""
}

// Proto returns l as the API's message.
func (l Lifecycle) Proto() *commonv1.Lifecycle {
	out := &commonv1.Lifecycle{Status: l.Status.Proto(), Since: unixTS(l.Since)}
	for _, c := range l.History {
		out.History = append(out.History, &commonv1.StatusChange{Status: c.Status.Proto(), At: unixTS(c.At), Event: c.Event})
	}
	return out
}

func unixTS(sec int64) *timestamppb.Timestamp {
	if sec == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(sec, 0).UTC())
}
