package app

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	"github.com/cairn-dev/cairn/pkg/domain/logtime"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// ownerTraits maps account (group) traits that name an owner to the team
// they own the account for, so rules with ACCOUNT_OWNER find CRM owners.
func ownerTraits() map[string]routingv1.Team {
	return map[string]routingv1.Team{
		"csm_id":            routingv1.Team_TEAM_CSM,
		"ae_id":             routingv1.Team_TEAM_AE,
		"sdr_id":            routingv1.Team_TEAM_SDR,
		"implementation_id": routingv1.Team_TEAM_IMPLEMENTATION,
	}
}

// ApplyIngestion applies ingestion log records inside the consumer's
// transaction: identify/group traits, CRM qualifications and handoffs, and
// touches. Records are processed in offset order. The partition is not
// used: the consumer keeps the event-time horizon (SetIngestionHorizon).
func (s *Service) ApplyIngestion(btx *pstore.Tx, _ uint32, recs []*ingestionv1.LogRecord) error {
	// Records may arm SLA timers, and they move the event-time horizon that
	// holds timers back during a backlog; the timer loop may be asleep, so
	// wake it once this transaction commits.
	btx.OnCommit(s.notify)
	// One Tx per workspace for the batch, deferring aggregate writes to
	// its end: an account's aggregates are decoded and encoded once per
	// batch rather than once per event.
	txs := map[string]*store.Tx{}
	in := func(ws string) *store.Tx {
		tx, ok := txs[ws]
		if !ok {
			tx = store.In(btx, ws)
			tx.DeferAggregates(s.aggs)
			txs[ws] = tx
		}
		return tx
	}
	for _, r := range recs {
		if ts := r.GetTombstone(); ts != nil {
			if err := s.forget(in(ts.GetWorkspace()), ts, true); err != nil {
				return err
			}
			continue
		}
		e := r.GetEvent()
		if e == nil || e.GetWorkspace() == "" {
			continue
		}
		if err := s.applyEvent(in(e.GetWorkspace()), e); err != nil {
			return fmt.Errorf("apply ingestion record %d: %w", r.GetOffset(), err)
		}
	}
	wss := make([]string, 0, len(txs))
	for ws := range txs {
		wss = append(wss, ws)
	}
	slices.Sort(wss)
	for _, ws := range wss {
		if err := txs[ws].FlushAggregates(); err != nil {
			return err
		}
	}
	return nil
}

// forget applies a right-to-be-forgotten tombstone: it drops what routing
// keeps about the account or user, strips the lead's personal data from
// their assignments (keeping the assignment, its owner and SLA for the
// reports) and, when forward is set (tombstones from ingestion, the source;
// stages and health repeat them), forwards it on the routing log.
func (s *Service) forget(tx *store.Tx, ts *commonv1.Tombstone, forward bool) error {
	if tx.Workspace() == "" {
		return nil
	}
	var ids []string
	if acct := ts.GetAccountId(); acct != "" {
		found, err := tx.AssignmentsByAccount(acct)
		if err != nil {
			return err
		}
		ids = append(ids, found...)
		if err := tx.DeleteAccount(acct); err != nil {
			return err
		}
		if err := tx.DeleteAggregates(acct); err != nil {
			return err
		}
		if err := tx.DeleteTouches(acct); err != nil {
			return err
		}
	}
	if uid := ts.GetUserId(); uid != "" {
		u, err := tx.User(uid)
		if err != nil {
			return err
		}
		if u.Email != "" {
			found, err := tx.AssignmentsByEmail(u.Email)
			if err != nil {
				return err
			}
			ids = append(ids, found...)
		}
		if u.AccountID != "" {
			agg, err := tx.Aggregates(u.AccountID)
			if err != nil {
				return err
			}
			agg.ForgetUser(uid)
			if err := tx.PutAggregates(u.AccountID, agg); err != nil {
				return err
			}
		}
		if err := tx.DeleteUser(uid); err != nil {
			return err
		}
	}
	for _, id := range ids {
		a, err := tx.Assignment(id)
		if err != nil {
			return err
		}
		// The account id is the customer's own pseudonymous key and keeps
		// the assignment in the reports; names, emails and attributes go.
		a.Lead = &routingv1.Lead{AccountId: a.GetAccountId()}
		if err := tx.PutAssignment(a); err != nil {
			return err
		}
	}
	if !forward {
		return nil
	}
	return s.publish(tx, ts.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Tombstone{Tombstone: ts}})
}

// structString returns a string field of a Struct, or "".
func structString(s *structpb.Struct, key string) string {
	if v, ok := s.GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

// flat converts a Struct's scalar fields to CEL-friendly values; nested
// values are kept as their Go form.
func flat(s *structpb.Struct) map[string]any {
	out := map[string]any{}
	for k, v := range s.GetFields() {
		out[k] = v.AsInterface()
	}
	return out
}

func (s *Service) applyEvent(tx *store.Tx, e *ingestionv1.Event) error {
	if err := s.applyAggregates(tx, e); err != nil {
		return err
	}
	switch e.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_IDENTIFY:
		if e.GetUserId() == "" {
			return nil
		}
		u, err := tx.User(e.GetUserId())
		if err != nil {
			return err
		}
		if u.Traits == nil {
			u.Traits = map[string]any{}
		}
		maps.Copy(u.Traits, flat(e.GetTraits()))
		if email := structString(e.GetTraits(), "email"); email != "" {
			u.Email = email
		}
		if e.GetAccountId() != "" {
			u.AccountID = e.GetAccountId()
		}
		return tx.PutUser(e.GetUserId(), u)
	case ingestionv1.EventType_EVENT_TYPE_GROUP:
		account := e.GetGroupId()
		if account == "" {
			account = e.GetAccountId()
		}
		if account == "" {
			return nil
		}
		a, err := tx.Account(account)
		if err != nil {
			return err
		}
		if a.Traits == nil {
			a.Traits = map[string]any{}
		}
		maps.Copy(a.Traits, flat(e.GetTraits()))
		for trait, team := range ownerTraits() {
			if id := structString(e.GetTraits(), trait); id != "" {
				if a.Owners == nil {
					a.Owners = map[string]string{}
				}
				a.Owners[team.String()] = id
			}
		}
		if d := structString(e.GetTraits(), "domain"); d != "" {
			a.Domain = strings.ToLower(d)
		} else if w := structString(e.GetTraits(), "website"); w != "" && a.Domain == "" {
			a.Domain = domainOf(w)
		}
		if e.GetUserId() != "" {
			u, err := tx.User(e.GetUserId())
			if err != nil {
				return err
			}
			u.AccountID = account
			if err := tx.PutUser(e.GetUserId(), u); err != nil {
				return err
			}
		}
		return tx.PutAccount(account, a)
	case ingestionv1.EventType_EVENT_TYPE_TRACK:
		return s.applyCRM(tx, e)
	}
	return nil
}

// eventAccount is the account an event counts for: its account id, the
// group of a group call, else the account identify/group calls tied the
// user to.
func eventAccount(tx *store.Tx, e *ingestionv1.Event) (string, error) {
	if id := e.GetAccountId(); id != "" {
		return id, nil
	}
	if e.GetType() == ingestionv1.EventType_EVENT_TYPE_GROUP && e.GetGroupId() != "" {
		return e.GetGroupId(), nil
	}
	if e.GetUserId() == "" {
		return "", nil
	}
	u, err := tx.User(e.GetUserId())
	if err != nil {
		return "", err
	}
	return u.AccountID, nil
}

// applyAggregates folds an event into its account's product aggregates (the
// PQL rules' count(), active_users(), ... functions) and, when the
// workspace has PQL rules, re-evaluates them at the event's time.
func (s *Service) applyAggregates(tx *store.Tx, e *ingestionv1.Event) error {
	acct, err := eventAccount(tx, e)
	if err != nil || acct == "" {
		return err
	}
	agg, err := tx.Aggregates(acct)
	if err != nil {
		return err
	}
	before := agg.Status()
	agg.Apply(e, &account.Config{})
	if err := tx.PutAggregates(acct, agg); err != nil {
		return err
	}
	// The account's status, derived from these aggregates as every service
	// derives it (pkg/domain/account): when it becomes churned its pending
	// handoffs close, and RouteTx opens none for it until it is won back.
	life := agg.Lifecycle()
	switch {
	case life.Status == account.StatusChurned && before != account.StatusChurned:
		if err := s.closeChurned(tx, acct, time.Unix(life.Since, 0).UTC(), false); err != nil {
			return err
		}
	case vocab.Canonical(e.GetEvent()) == "billing.churned":
		// A churn that arrives after the win-back that followed it (a
		// backfill): the account is not churned now, but the work opened
		// before the churn ended with it, as it would have in order.
		if err := s.closeChurned(tx, acct, account.EventTime(e), true); err != nil {
			return err
		}
	}
	_, eng, err := s.engine(tx)
	if err != nil || !eng.HasPQL() {
		return err
	}
	return s.evaluatePQL(tx, eng, acct, agg, life.Status, account.EventTime(e))
}

// domainOf extracts the host of a website trait, without "www.".
func domainOf(w string) string {
	w = strings.ToLower(w)
	w = strings.TrimPrefix(strings.TrimPrefix(w, "https://"), "http://")
	w = strings.TrimPrefix(w, "www.")
	if i := strings.IndexAny(w, "/:?"); i >= 0 {
		w = w[:i]
	}
	return w
}

// eventLead builds the Lead of a CRM event from its properties, context
// traits and what identify calls said about the user.
func eventLead(tx *store.Tx, e *ingestionv1.Event) (*routingv1.Lead, error) {
	u, err := tx.User(e.GetUserId())
	if err != nil {
		return nil, err
	}
	props := e.GetProperties()
	ctxTraits := e.GetContext().GetFields()["traits"].GetStructValue()
	lead := &routingv1.Lead{
		LeadId:     structString(props, "lead_id"),
		Email:      structString(props, "email"),
		AccountId:  e.GetAccountId(),
		Attributes: map[string]string{},
	}
	if lead.LeadId == "" {
		lead.LeadId = e.GetUserId()
	}
	for _, src := range []string{structString(ctxTraits, "email"), u.Email} {
		if lead.Email == "" {
			lead.Email = src
		}
	}
	if lead.AccountId == "" {
		lead.AccountId = u.AccountID
	}
	traits := map[string]any{}
	maps.Copy(traits, u.Traits)
	maps.Copy(traits, flat(ctxTraits))
	maps.Copy(traits, flat(props))
	for k, v := range traits {
		if str, ok := v.(string); ok && len(k) <= rserver.MaxID && len(str) <= rserver.MaxText && len(lead.Attributes) < rserver.MaxAttrs {
			lead.Attributes[k] = str
		}
	}
	lead.Name, _ = traits["name"].(string)
	lead.Segment, _ = traits["segment"].(string)
	lead.Territory, _ = traits["territory"].(string)
	return lead, nil
}

// disqualifies reports whether a CRM event ends a lead's handoffs.
func disqualifies(e *ingestionv1.Event) bool {
	switch vocab.Canonical(e.GetEvent()) {
	case "crm.closed_lost", "crm.lead_disqualified":
		return true
	}
	return structString(e.GetProperties(), "status") == "disqualified"
}

func (s *Service) applyCRM(tx *store.Tx, e *ingestionv1.Event) error {
	name := vocab.Canonical(e.GetEvent())
	if !strings.HasPrefix(name, "crm.") {
		return nil
	}
	reqID := "ingestion:" + e.GetMessageId()
	switch name {
	case "crm.mql", "crm.sql_accepted":
		lead, err := eventLead(tx, e)
		if err != nil {
			return err
		}
		t := routingv1.HandoffType_HANDOFF_TYPE_MQL
		r := Route{Type: t, Lead: lead, RequestID: reqID, Signal: flat(e.GetProperties()), At: account.EventTime(e)}
		if name == "crm.sql_accepted" {
			r.Type = routingv1.HandoffType_HANDOFF_TYPE_SQL
			// The CRM already chose the AE: honour it when we know them.
			if id := structString(e.GetProperties(), "owner_id"); id != "" {
				if _, err := tx.Owner(id); err == nil {
					r.OwnerID, r.Rule = id, "crm_owner"
				}
			}
		}
		a, err := s.RouteTx(tx, r)
		if err != nil {
			return skipChurned(err)
		}
		return s.touchedSince(tx, a, r.At.Add(-TouchSkew))
	case "crm.closed_won":
		if e.GetAccountId() == "" {
			return nil
		}
		r := Route{
			Type: routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON, AccountID: e.GetAccountId(), RequestID: reqID,
			Lead: &routingv1.Lead{AccountId: e.GetAccountId()}, Reason: "closed won", Signal: flat(e.GetProperties()),
			At: account.EventTime(e),
		}
		a, err := s.RouteTx(tx, r)
		if err != nil {
			return skipChurned(err)
		}
		return s.touchedSince(tx, a, r.At.Add(-TouchSkew))
	}
	if slices.Contains(touchNames, name) {
		kind := strings.TrimPrefix(name, "crm.")
		if err := s.recordTouch(tx, e, kind); err != nil {
			return err
		}
		return s.touchMatching(tx, e, kind)
	}
	if disqualifies(e) {
		return s.touchMatching(tx, e, "disqualified")
	}
	return nil
}

// touchMatching touches the not yet touched assignments of the event's lead
// (by email) or, failing that, of its account.
// TouchSkew is how far before a handoff's creation a CRM touch may be dated
// and still count for it: the CRM's clock and the event source's may differ
// by a few minutes, not by more.
const TouchSkew = 10 * time.Minute

func (s *Service) touchMatching(tx *store.Tx, e *ingestionv1.Event, touch string) error {
	lead, err := eventLead(tx, e)
	if err != nil {
		return err
	}
	var ids []string
	if lead.GetEmail() != "" {
		if ids, err = tx.AssignmentsByEmail(lead.GetEmail()); err != nil {
			return err
		}
	}
	if len(ids) == 0 && lead.GetAccountId() != "" {
		if ids, err = tx.AssignmentsByAccount(lead.GetAccountId()); err != nil {
			return err
		}
	}
	at := e.GetTimestamp().AsTime()
	if e.GetTimestamp() == nil {
		at = s.clk.Now()
	}
	for _, id := range ids {
		a, err := tx.Assignment(id)
		if err != nil {
			return err
		}
		switch a.GetState() {
		case routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED, routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED:
			continue
		}
		// A CRM touch from before the handoff existed (a backfill, a late
		// delivery) did not answer it: in order, it would have reached no
		// assignment. TouchSkew allows for clocks that disagree.
		if at.Before(a.GetCreatedAt().AsTime().Add(-TouchSkew)) {
			continue
		}
		if _, err := s.TouchTx(tx, id, touch, at); err != nil {
			return err
		}
	}
	return nil
}

// ApplyStages applies stage transitions and signals: they update the
// account's product context and re-evaluate PQL rules. stage and
// previous_stage are the account's stages in the workspace's default
// journey: other journeys' stage changes are skipped (pkg/domain/journey,
// ADR 0023).
func (s *Service) ApplyStages(btx *pstore.Tx, _ uint32, recs []*stagesv1.LogRecord) error {
	// Records may arm SLA timers; the timer loop may be asleep with nothing
	// pending, so wake it once this transaction commits.
	btx.OnCommit(s.notify)
	for _, r := range recs {
		var (
			ws, account string
			at          time.Time
			update      func(a *store.Account)
		)
		switch {
		case r.GetTombstone() != nil:
			if err := s.forget(store.In(btx, r.GetTombstone().GetWorkspace()), r.GetTombstone(), false); err != nil {
				return err
			}
			continue
		case r.GetTransition() != nil:
			t := r.GetTransition()
			if !journey.IsDefault(t) {
				continue
			}
			ws, account, at = t.GetWorkspace(), t.GetAccountId(), s.recordTime(t.GetAt())
			update = func(a *store.Account) { a.PreviousStage, a.Stage = t.GetFromStage(), t.GetToStage() }
		case r.GetSignal() != nil:
			sig := r.GetSignal()
			ws, account, at = sig.GetWorkspace(), sig.GetAccountId(), signalTime(s, sig)
			update = func(a *store.Account) { applySignal(a, sig) }
		default:
			continue
		}
		if ws == "" || account == "" {
			continue
		}
		if err := s.updateProduct(store.In(btx, ws), account, at, update); err != nil {
			return fmt.Errorf("apply stages record %d: %w", r.GetOffset(), err)
		}
	}
	return nil
}

// signalHandoff is the handoff type a health signal kind opens: RISK or
// RENEWAL, else unspecified (the signal opens none).
func signalHandoff(k commonv1.SignalKind) routingv1.HandoffType {
	switch k {
	case commonv1.SignalKind_SIGNAL_KIND_RISK:
		return routingv1.HandoffType_HANDOFF_TYPE_RISK
	case commonv1.SignalKind_SIGNAL_KIND_RENEWAL:
		return routingv1.HandoffType_HANDOFF_TYPE_RENEWAL
	}
	return routingv1.HandoffType_HANDOFF_TYPE_UNSPECIFIED
}

// closeCleared closes the account's pending RISK (or RENEWAL) handoffs once
// a health signal of that kind closes and none of its kind is still open:
// the risk cleared, or the renewal window passed (renewed, or churned), so
// nobody can still do that work and it leaves the open queue. A handoff
// that had breached stays counted as breached untouched; one closed before
// its due time is not judged (docs/routing.md, Reports).
func (s *Service) closeCleared(tx *store.Tx, sig *commonv1.Signal) error {
	t := signalHandoff(sig.GetKind())
	if t == routingv1.HandoffType_HANDOFF_TYPE_UNSPECIFIED {
		return nil
	}
	acct, err := tx.Account(sig.GetAccountId())
	if err != nil {
		return err
	}
	for _, k := range acct.SignalKinds {
		if k == rules.TypeName(t) {
			return nil // another signal of the kind is open: the work stands
		}
	}
	return s.closePending(tx, sig.GetAccountId(), signalTime(s, sig), CloseReasonCleared, func(a *routingv1.Assignment) bool {
		return a.GetType() == t
	})
}

// applySignal records a signal's change in the account's product context:
// its reason among the open signals, its attributes, and its kind when it
// opens handoffs.
func applySignal(a *store.Account, sig *commonv1.Signal) {
	reason := sig.GetReason()
	a.Signals = slices.DeleteFunc(a.Signals, func(s string) bool { return s == reason })
	delete(a.SignalKinds, reason)
	if t := signalHandoff(sig.GetKind()); t != routingv1.HandoffType_HANDOFF_TYPE_UNSPECIFIED && sig.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN {
		if a.SignalKinds == nil {
			a.SignalKinds = map[string]string{}
		}
		a.SignalKinds[reason] = rules.TypeName(t)
	}
	if sig.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN {
		a.Signals = append(a.Signals, reason)
		if len(sig.GetAttributes()) > 0 && a.SignalAttributes == nil {
			a.SignalAttributes = map[string]any{}
		}
		for k, v := range sig.GetAttributes() {
			a.SignalAttributes[k] = v
		}
	}
	slices.Sort(a.Signals)
}

// updateProduct changes an account's product context and routes a PQL for
// every PQL rule that starts to hold, evaluated at at.
func (s *Service) updateProduct(tx *store.Tx, account string, at time.Time, update func(a *store.Account)) error {
	a, err := tx.Account(account)
	if err != nil {
		return err
	}
	update(a)
	if err := tx.PutAccount(account, a); err != nil {
		return err
	}
	_, eng, err := s.engine(tx)
	if err != nil || !eng.HasPQL() {
		return err
	}
	agg, err := tx.Aggregates(account)
	if err != nil {
		return err
	}
	return s.evaluatePQL(tx, eng, account, agg, agg.Status(), at)
}

// evaluatePQL evaluates the PQL rules of eng for an account, whose
// aggregates give it status, at at and routes a PQL handoff, created at at,
// for every rule that starts to hold.
func (s *Service) evaluatePQL(tx *store.Tx, eng *rules.Engine, acctID string, agg *account.Aggregates, status account.Status, at time.Time) error {
	// When no rule can hold for the account's status, none holds now and
	// none fires: unless some held before, nothing changes, and neither
	// the account's record nor the rules need reading.
	if !eng.PQLCanHold(status) && !tx.AccountListsPQL(acctID) {
		return nil
	}
	a, err := tx.Account(acctID)
	if err != nil {
		return err
	}
	attrs := map[string]any{}
	maps.Copy(attrs, a.SignalAttributes)
	maps.Copy(attrs, a.Traits)
	fired, holding, errs := eng.EvaluatePQL(rules.Product{
		Aggregates: agg, Now: at,
		Stage: a.Stage, PreviousStage: a.PreviousStage, HealthBand: a.HealthBand, HealthScore: a.HealthScore,
		Signals: a.Signals, Account: attrs,
	}, a.PQLHolding)
	for _, err := range errs {
		s.logger.Warn("PQL rule error", "workspace", tx.Workspace(), "account", acctID, "err", err)
	}
	if !slices.Equal(holding, a.PQLHolding) {
		a.PQLHolding = holding
		if err := tx.PutAccount(acctID, a); err != nil {
			return err
		}
	}
	for _, rule := range fired {
		a, err := s.RouteTx(tx, Route{
			Type: routingv1.HandoffType_HANDOFF_TYPE_PQL, AccountID: acctID, Reason: "PQL rule " + rule,
			Lead:   &routingv1.Lead{AccountId: acctID, Attributes: map[string]string{"pql_rule": rule}},
			Signal: map[string]any{"pql_rule": rule}, At: at,
		})
		if err != nil {
			if err := skipChurned(err); err != nil {
				return err
			}
			continue
		}
		// A contact routing read before the rule started to hold (a
		// stage record applied late) answers the PQL as it would an MQL.
		if err := s.touchedSince(tx, a, at.Add(-TouchSkew)); err != nil {
			return err
		}
	}
	return nil
}

// recordTime is an upstream record's time, or now for records without one.
func (s *Service) recordTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || !ts.IsValid() {
		return s.clk.Now()
	}
	return ts.AsTime()
}

// signalTime is when a signal opened or closed (logtime.Signal, the time
// its consumer waits for), or now for a signal without a valid time.
func signalTime(s *Service, sig *commonv1.Signal) time.Time {
	if t := logtime.Signal(sig); !t.IsZero() {
		return t
	}
	return s.clk.Now()
}

// bandName is "healthy", "neutral" or "at_risk".
func bandName(b healthv1.Band) string {
	if b == healthv1.Band_BAND_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(b.String(), "BAND_"))
}

// ApplyHealth applies score changes (PQL context) and signals: an open
// renewal-window signal routes a RENEWAL handoff (rules usually send it to
// the account's CSM); an open risk signal routes a RISK handoff and, when the
// account has an AE, a second RISK assignment to that AE.
func (s *Service) ApplyHealth(btx *pstore.Tx, _ uint32, recs []*healthv1.LogRecord) error {
	// Records may arm SLA timers; the timer loop may be asleep with nothing
	// pending, so wake it once this transaction commits.
	btx.OnCommit(s.notify)
	for _, r := range recs {
		switch {
		case r.GetTombstone() != nil:
			if err := s.forget(store.In(btx, r.GetTombstone().GetWorkspace()), r.GetTombstone(), false); err != nil {
				return err
			}
		case r.GetScoreChange() != nil:
			c := r.GetScoreChange()
			if c.GetWorkspace() == "" || c.GetAccountId() == "" {
				continue
			}
			err := s.updateProduct(store.In(btx, c.GetWorkspace()), c.GetAccountId(), s.recordTime(c.GetAt()), func(a *store.Account) {
				a.HealthBand, a.HealthScore = bandName(c.GetBand()), c.GetScore()
			})
			if err != nil {
				return fmt.Errorf("apply health record %d: %w", r.GetOffset(), err)
			}
		case r.GetSignal() != nil:
			if err := s.applyHealthSignal(store.In(btx, r.GetSignal().GetWorkspace()), r.GetSignal()); err != nil {
				return fmt.Errorf("apply health record %d: %w", r.GetOffset(), err)
			}
		}
	}
	return nil
}

func (s *Service) applyHealthSignal(tx *store.Tx, sig *commonv1.Signal) error {
	if tx.Workspace() == "" || sig.GetAccountId() == "" {
		return nil
	}
	if err := s.updateProduct(tx, sig.GetAccountId(), signalTime(s, sig), func(a *store.Account) { applySignal(a, sig) }); err != nil {
		return err
	}
	if sig.GetState() != commonv1.SignalState_SIGNAL_STATE_OPEN {
		return s.closeCleared(tx, sig)
	}
	t := signalHandoff(sig.GetKind())
	if t == routingv1.HandoffType_HANDOFF_TYPE_UNSPECIFIED {
		return nil
	}
	// Renewal windows (120/90/60/30 days) and several risk reasons open
	// one after another: while the account has an open handoff of the same
	// type, the owner already has it.
	// One handoff per opening of a signal: the same signal reopened later
	// is a new qualification.
	opened := time.Time{}
	if sig.GetOpenedAt() != nil {
		opened = sig.GetOpenedAt().AsTime()
	}
	reqID := fmt.Sprintf("health:%s:%d", sig.GetSignalId(), opened.UnixNano())
	// A pending handoff of the same type (any owner, assigned or not), or
	// one touched since the signal opened, already has it: the signal is
	// recorded on it as a suppressed duplicate, and neither it nor its AE
	// companion is opened again.
	dup, err := s.pendingDuplicate(tx, Route{Type: t}, sig.GetAccountId(), "", signalTime(s, sig))
	if err != nil {
		return err
	}
	if dup != nil {
		if tx.RequestAssignment(reqID) != "" {
			return nil
		}
		_, err := s.foldDuplicate(tx, dup, reqID, signalTime(s, sig))
		return err
	}
	signal := map[string]any{"kind": strings.ToLower(strings.TrimPrefix(sig.GetKind().String(), "SIGNAL_KIND_")), "reason": sig.GetReason(), "message": sig.GetMessage()}
	for k, v := range sig.GetAttributes() {
		signal[k] = v
	}
	route := Route{Type: t, AccountID: sig.GetAccountId(), RequestID: reqID, Reason: sig.GetReason(), Signal: signal, Lead: &routingv1.Lead{AccountId: sig.GetAccountId()}, At: signalTime(s, sig)}
	first, err := s.RouteTx(tx, route)
	if err != nil {
		return skipChurned(err)
	}
	if err := s.touchedSince(tx, first, route.At); err != nil {
		return err
	}
	if t != routingv1.HandoffType_HANDOFF_TYPE_RISK {
		return nil
	}
	acct, err := tx.Account(sig.GetAccountId())
	if err != nil {
		return err
	}
	ae := acct.Owners[routingv1.Team_TEAM_AE.String()]
	if ae == "" || ae == first.GetOwnerId() {
		return nil
	}
	if _, err := tx.Owner(ae); errors.Is(err, store.ErrNotFound) {
		return nil
	}
	route.OwnerID, route.Rule, route.RequestID = ae, "account_ae", reqID+":ae"
	second, err := s.RouteTx(tx, route)
	if err != nil {
		return skipChurned(err)
	}
	return s.touchedSince(tx, second, route.At)
}

// touchNames are the CRM events that touch an account's open handoffs, as
// applyCRM applies them and touchedSince looks them up.
var touchNames = []string{vocab.Canonical("crm.contacted"), vocab.Canonical("crm.meeting_booked")}

// recordTouch keeps the touch in its account's recent touches, for
// touchedSince.
func (s *Service) recordTouch(tx *store.Tx, e *ingestionv1.Event, kind string) error {
	acctID, err := eventAccount(tx, e)
	if err != nil || acctID == "" {
		return err
	}
	return tx.AddTouch(acctID, account.EventTime(e).Unix(), kind)
}

// maxCredited bounds the touches touchedSince replays on one handoff: a
// handoff still open after that many is waiting for a kind of touch the
// account's team does not make.
const maxCredited = 256

// touchedSince gives a new handoff the account's CRM touches from since
// on, in time order, as if they had arrived after it. Health's log trails
// ingestion's, so a call made right after a renewal window opened can
// reach routing before the handoff it answers exists, and during a backlog
// routing may have read weeks further into the event log by then; a CRM
// sync can also deliver the contact before the MQL it answers. Without
// this the call would be lost, or the latest one credited, and the handoff
// breach although the owner acted in time.
//
// Touches are kept per account, not per lead: on an account with several
// leads a touch of one may be credited to another's handoff that arrived
// after it.
func (s *Service) touchedSince(tx *store.Tx, a *routingv1.Assignment, since time.Time) error {
	if a.GetAssignmentId() == "" || a.GetFirstTouchAt() != nil || !store.Open(a.GetState()) {
		return nil
	}
	ts, err := tx.TouchesSince(a.GetAccountId(), since.Unix(), maxCredited)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if a, err = s.TouchTx(tx, a.GetAssignmentId(), t.Kind, time.Unix(t.At, 0).UTC()); err != nil {
			return err
		}
		if !store.Open(a.GetState()) {
			return nil
		}
	}
	if len(ts) > 0 {
		return nil // still waiting for a kind of touch the policy accepts
	}
	if has, err := tx.HasTouches(a.GetAccountId()); err != nil || has {
		return err // touches are recorded, and none came after the signal
	}
	// Accounts from before touches were recorded: the aggregates keep the
	// first and last time of each touch name only, so the latest touch is
	// used, and the recorded first touch is never earlier than a real one.
	agg, err := tx.Aggregates(a.GetAccountId())
	if err != nil {
		return err
	}
	var last int64
	touch := ""
	for _, name := range touchNames {
		if sp, ok := agg.Events[name]; ok && sp.Last > last {
			last, touch = sp.Last, strings.TrimPrefix(name, "crm.")
		}
	}
	if last == 0 || last < since.Unix() {
		return nil
	}
	_, err = s.TouchTx(tx, a.GetAssignmentId(), touch, time.Unix(last, 0).UTC())
	return err
}
