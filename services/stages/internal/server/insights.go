package server

import (
	"context"
	"fmt"
	"sort"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Event names the insights read (docs/journeys.md).
func contractEvents() []string {
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

// contractStart is the contract start trait, else the first contract event.
func contractStart(a *account.Aggregates) int64 {
	if a.ContractStart != 0 {
		return a.ContractStart
	}
	return firstOf(a, contractEvents())
}

type moment struct {
	name, description string
	events            []string
	within            time.Duration
}

func moments() []moment {
	return []moment{
		{"first_login_7d", "First login within 7 days of the contract.", []string{"login", "logged_in", "signed_in", "user_logged_in"}, 7 * day},
		{"first_value_45d", "First value (activation) within 45 days of the contract.", []string{"activated", "first_value"}, 45 * day},
	}
}

// GetMomentsOfTruth reports the share of contracted accounts reaching first
// login within 7 days and first value within 45 days. An account is eligible
// once its deadline has passed or it reached the moment.
func (s *Server) GetMomentsOfTruth(ctx context.Context, req *stagesv1.GetMomentsOfTruthRequest) (*stagesv1.GetMomentsOfTruthResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkCohort(req.GetCohort()); err != nil {
		return nil, s.toStatus(err)
	}
	now := s.clock.Now().Unix()
	moments := moments()
	out := make([]*stagesv1.Moment, len(moments))
	for i, m := range moments {
		out[i] = &stagesv1.Moment{Name: m.name, Description: m.description}
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, "")
		if err != nil {
			return err
		}
		return store.Live.Accounts(tx, ws, id, nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
			if req.GetCohort() != "" && cohortOf(aj) != req.GetCohort() {
				return true, nil
			}
			if req.GetSegment() != "" && aj.GetTraits()["segment"] != req.GetSegment() {
				return true, nil
			}
			acc, err := store.Live.GetAccount(tx, ws, id, aj.GetAccountId())
			if err != nil {
				return false, err
			}
			start := contractStart(acc.Aggs)
			if start == 0 {
				return true, nil
			}
			for i, m := range moments {
				deadline := start + int64(m.within/time.Second)
				first := firstOf(acc.Aggs, m.events)
				reached := first != 0 && first <= deadline
				if reached || now >= deadline {
					out[i].Eligible++
				}
				if reached {
					out[i].Reached++
				}
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("moments of truth: %w", err))
	}
	// Counts add across replicas; the rate is aggregate.Moments', so one
	// replica and the gateway's merge of several compute it the same way.
	return aggregate.Moments([]*stagesv1.GetMomentsOfTruthResponse{{Moments: out}}), nil
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

// GetBuyingCommittee reports the personas engaged on an account and stuck
// signals of its buying process.
func (s *Server) GetBuyingCommittee(ctx context.Context, req *stagesv1.GetBuyingCommitteeRequest) (*stagesv1.GetBuyingCommitteeResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), true); err != nil {
		return nil, s.toStatus(err)
	}
	var acc *store.Account
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, "")
		if err != nil {
			return err
		}
		acc, err = store.Live.GetAccount(tx, ws, id, req.GetAccountId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("buying committee of %q: %w", req.GetAccountId(), err))
	}
	return committee(acc.Aggs, s.clock.Now()), nil
}

func committee(a *account.Aggregates, now time.Time) *stagesv1.GetBuyingCommitteeResponse {
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
