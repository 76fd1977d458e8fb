package app

import (
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/sla"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// Bounds on re-routing UNASSIGNED assignments, so that neither a directory
// change nor a touch turns into a scan of a large backlog inside one
// transaction.
const (
	// rerouteOnDirectory is how many of the oldest UNASSIGNED assignments a
	// directory or config change tries to route.
	rerouteOnDirectory = 1000
	// rerouteOnFreed is how many an assignment leaving an open state (a
	// freed capacity slot) tries.
	rerouteOnFreed = 10
)

// RerouteUnassigned tries to route up to limit of the workspace's oldest
// UNASSIGNED assignments again, at the current time, and returns how many
// found an owner. Called when an owner may have become available: an owner,
// pool or config was written, or an assignment stopped counting against
// its owner's capacity.
func (s *Service) RerouteUnassigned(tx *store.Tx, limit int) (int, error) {
	waiting, _, _, err := tx.ListAssignments(store.Filter{State: routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED}, store.Page{Size: limit})
	if err != nil {
		return 0, err
	}
	if len(waiting) == 0 {
		return 0, nil
	}
	cfg, eng, err := s.engine(tx)
	if err != nil {
		return 0, err
	}
	now := s.clk.Now()
	dir := &directory{s: s, tx: tx}
	routed := 0
	for _, a := range waiting {
		ok, err := s.reroute(tx, cfg, eng, dir, a, now)
		if err != nil {
			return routed, err
		}
		if ok {
			routed++
		}
	}
	return routed, nil
}

// reroute runs the rules again for one UNASSIGNED assignment. The original
// `signal` variable is not stored, so rules see the lead's attributes as
// the signal (CRM event properties and the PQL rule name are among them).
// The SLA clock starts now: nobody could act on the lead before.
func (s *Service) reroute(tx *store.Tx, cfg *routingv1.Config, eng *rules.Engine, dir *directory, a *routingv1.Assignment, now time.Time) (bool, error) {
	lead := a.GetLead()
	acct, err := tx.Account(a.GetAccountId())
	if err != nil {
		return false, err
	}
	if a.GetAccountId() == "" {
		acct = &store.Account{}
	}
	segment := lead.GetSegment()
	if segment == "" {
		segment, _ = acct.Traits["segment"].(string)
	}
	territory := lead.GetTerritory()
	if territory == "" {
		territory, _ = acct.Traits["territory"].(string)
	}
	signal := map[string]any{}
	for k, v := range lead.GetAttributes() {
		signal[k] = v
	}
	res := eng.Decide(rules.Input{
		Type: a.GetType(), AccountID: a.GetAccountId(), Email: lead.GetEmail(),
		Lead: leadVars(lead), Account: accountVars(a.GetAccountId(), acct), Signal: signal, Now: now,
		Territory: territory, Segment: segment,
	}, dir)
	for _, err := range res.Errors {
		s.logger.Warn("routing rule error", "workspace", tx.Workspace(), "err", err)
	}
	if res.OwnerID == "" {
		return false, nil
	}
	for pool, c := range res.Cursors {
		if err := tx.PutCursor(pool, c); err != nil {
			return false, err
		}
	}
	o, ok := dir.Owner(res.OwnerID)
	if !ok {
		return false, nil
	}
	a.OwnerId, a.Decision = res.OwnerID, res.Decision
	a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	if p := sla.Select(cfg.GetSlaPolicies(), a.GetType(), segment); p != nil {
		a.Sla = sla.Start(p, o.Calendar, now)
		if err := s.armNext(tx, a, o.Calendar, now); err != nil {
			return false, err
		}
	}
	if a.GetAccountId() != "" && o.Owner.GetTeam() != routingv1.Team_TEAM_UNSPECIFIED {
		if acct.Owners == nil {
			acct.Owners = map[string]string{}
		}
		acct.Owners[o.Owner.GetTeam().String()] = a.GetOwnerId()
		if err := tx.PutAccount(a.GetAccountId(), acct); err != nil {
			return false, err
		}
	}
	if _, err := tx.UpdateAssignment(a, "", routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED); err != nil {
		return false, err
	}
	return true, s.publish(tx, a.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}})
}
