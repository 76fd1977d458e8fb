package app

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/plays/internal/play"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// trigger is one thing that happened to an account, as plays match it:
// a kind from the play package's vocabulary and the record's fields.
type trigger struct {
	kind    string
	account string
	at      time.Time
	record  map[string]any
	// summary says what happened, for tasks, firings and messages.
	summary string
	// inJourney, for stage triggers, says whether the stage change is one
	// of a journey ("" = the default one); nil for other triggers.
	inJourney func(id string) bool
}

// scope is how records are applied: live, by the consumers, or by a
// replay of the history through some plays.
type scope struct {
	// log names the upstream log (and replica) the records come from, for
	// their source keys: "stages", "health", "routing", "routing-1", ...
	log string
	// replay is the replay's id; "" when live.
	replay string
	// plays, in a replay, are the plays replayed; nil when live (all).
	plays map[string]bool
	// since, in a replay, is the earliest record time that fires; older
	// records only teach the replay what accounts were like.
	since time.Time
	// stats, in a replay, counts what it did.
	stats *replayStats
}

// tx scopes a transaction to a workspace as sc says.
func (sc scope) tx(tx *pstore.Tx, ws string) *store.Tx {
	if sc.replay != "" {
		return store.InReplay(tx, ws, sc.replay)
	}
	return store.In(tx, ws)
}

// src is an upstream record's source key: its log, partition and offset.
func (sc scope) src(p uint32, offset uint64) string {
	return sc.log + "/" + strconv.FormatUint(uint64(p), 10) + "/" + strconv.FormatUint(offset, 10)
}

// ApplyStages applies stages log records: stage changes and drop-off
// signals update the account and may fire plays.
func (s *Service) ApplyStages(tx *pstore.Tx, p uint32, recs []*stagesv1.LogRecord) error {
	return s.applyStages(tx, p, recs, scope{log: "stages"})
}

func (s *Service) applyStages(tx *pstore.Tx, p uint32, recs []*stagesv1.LogRecord, sc scope) error {
	for _, r := range recs {
		src := sc.src(p, r.GetOffset())
		switch {
		case r.GetTransition() != nil:
			tr := r.GetTransition()
			t := sc.tx(tx, tr.GetWorkspace())
			a, err := t.Account(tr.GetAccountId())
			if err != nil {
				return err
			}
			trigs := transitionTriggers(tr, a.Status)
			if a.Stages == nil {
				a.Stages = map[string]string{}
			}
			if tr.GetToStage() == "" {
				delete(a.Stages, tr.GetJourneyId())
			} else {
				a.Stages[tr.GetJourneyId()] = tr.GetToStage()
			}
			// account.stage is the account's stage in the default journey;
			// other journeys' are in account.stages (ADR 0023).
			if journey.IsDefault(tr) {
				a.Journey, a.Stage = tr.GetJourneyId(), tr.GetToStage()
			}
			switch tr.GetCause() {
			case "churn":
				a.Status = "churned"
			case "win_back":
				a.Status = "active"
			}
			if err := t.PutAccount(a); err != nil {
				return err
			}
			if err := s.fireAll(t, a, trigs, sc, src); err != nil {
				return err
			}
		case r.GetSignal() != nil:
			if err := s.applySignal(tx, "stages", r.GetSignal(), sc, src); err != nil {
				return err
			}
		case r.GetTombstone() != nil:
			if err := s.forget(tx, r.GetTombstone(), sc); err != nil {
				return err
			}
		}
	}
	return nil
}

// transitionTriggers are the triggers of one stage change: the stage left,
// the stage entered (each matched against a play's journey), and a churn
// or win-back. Every active journey logs its own churn and win-back of the
// account; status is the account's before this record ("churned",
// "active" after a win-back, "" before either), so that the status
// triggers fire once per change of the account's status, on the first
// journey's record of it.
func transitionTriggers(tr *stagesv1.Transition, status string) []trigger {
	rec := map[string]any{
		"journey": tr.GetJourneyId(), "version": int64(tr.GetVersion()), "from_stage": tr.GetFromStage(),
		"to_stage": tr.GetToStage(), "cause": tr.GetCause(), "at": tr.GetAt().AsTime(),
	}
	base := trigger{account: tr.GetAccountId(), at: tr.GetAt().AsTime(), record: rec}
	var out []trigger
	add := func(kind, summary string) {
		t := base
		t.kind, t.summary = kind, summary
		if kind == play.StageEntered || kind == play.StageExited {
			t.inJourney = func(id string) bool { return journey.In(id, tr) }
		}
		out = append(out, t)
	}
	if tr.GetFromStage() != "" {
		add(play.StageExited, fmt.Sprintf("left stage %s of journey %s (%s)", tr.GetFromStage(), tr.GetJourneyId(), tr.GetCause()))
	}
	if tr.GetToStage() != "" {
		add(play.StageEntered, fmt.Sprintf("entered stage %s of journey %s", tr.GetToStage(), tr.GetJourneyId()))
	}
	switch {
	case tr.GetCause() == "churn" && status != "churned":
		add(play.StatusChurned, "the account churned")
	case tr.GetCause() == "win_back" && status != "active":
		add(play.StatusWonBack, "the account was won back")
	}
	return out
}

// ApplyHealth applies health log records: score changes and risk,
// expansion and renewal signals.
func (s *Service) ApplyHealth(tx *pstore.Tx, p uint32, recs []*healthv1.LogRecord) error {
	return s.applyHealth(tx, p, recs, scope{log: "health"})
}

func (s *Service) applyHealth(tx *pstore.Tx, p uint32, recs []*healthv1.LogRecord, scp scope) error {
	for _, r := range recs {
		src := scp.src(p, r.GetOffset())
		switch {
		case r.GetScoreChange() != nil:
			sc := r.GetScoreChange()
			t := scp.tx(tx, sc.GetWorkspace())
			a, err := t.Account(sc.GetAccountId())
			if err != nil {
				return err
			}
			band, prev := bandName(sc.GetBand()), bandName(sc.GetPreviousBand())
			a.Band, a.Score = band, sc.GetScore()
			if err := t.PutAccount(a); err != nil {
				return err
			}
			if prev == "" || prev == band {
				continue
			}
			if err := s.fireAll(t, a, []trigger{{
				kind: "health.band_changed", account: sc.GetAccountId(), at: sc.GetAt().AsTime(),
				record: map[string]any{
					"score": sc.GetScore(), "previous_score": sc.GetPreviousScore(), "band": band, "previous_band": prev,
					"at": sc.GetAt().AsTime(),
				},
				summary: fmt.Sprintf("health moved from %s to %s (score %.0f → %.0f)", words(prev), words(band), sc.GetPreviousScore(), sc.GetScore()),
			}}, scp, src); err != nil {
				return err
			}
		case r.GetSignal() != nil:
			if err := s.applySignal(tx, "health", r.GetSignal(), scp, src); err != nil {
				return err
			}
		case r.GetTombstone() != nil:
			if err := s.forget(tx, r.GetTombstone(), scp); err != nil {
				return err
			}
		}
	}
	return nil
}

// applySignal keeps the account's open signals and fires signal.opened or
// signal.closed.
func (s *Service) applySignal(tx *pstore.Tx, source string, sg *commonv1.Signal, sc scope, src string) error {
	t := sc.tx(tx, sg.GetWorkspace())
	a, err := t.Account(sg.GetAccountId())
	if err != nil {
		return err
	}
	open := sg.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN
	// A signal's record comes again when its attributes change (a renewal
	// window's band, say) while it stays open: that is no new opening, and
	// fires nothing. Opening and closing are the changes of state.
	was := slices.Contains(a.OpenIDs, sg.GetSignalId())
	if open == was {
		return nil
	}
	if open {
		a.OpenIDs = append(a.OpenIDs, sg.GetSignalId())
		a.Signals = append(a.Signals, sg.GetReason())
	} else {
		a.OpenIDs = slices.DeleteFunc(a.OpenIDs, func(id string) bool { return id == sg.GetSignalId() })
		if i := slices.Index(a.Signals, sg.GetReason()); i >= 0 {
			a.Signals = slices.Delete(a.Signals, i, i+1)
		}
	}
	if err := t.PutAccount(a); err != nil {
		return err
	}
	kind := strings.ToLower(strings.TrimPrefix(sg.GetKind().String(), "SIGNAL_KIND_"))
	attrs := map[string]any{}
	for k, v := range sg.GetAttributes() {
		attrs[k] = v
	}
	rec := map[string]any{
		"source": source, "signal_id": sg.GetSignalId(), "kind": kind, "reason": sg.GetReason(),
		"message": sg.GetMessage(), "attributes": attrs,
	}
	at := sg.GetOpenedAt().AsTime()
	tk, verb := "signal.opened", "opened"
	rec["state"] = "open"
	if !open {
		tk, verb, at = "signal.closed", "closed", sg.GetClosedAt().AsTime()
		rec["state"] = "closed"
	}
	rec["at"] = at
	if d, err := strconv.Atoi(sg.GetAttributes()["window_days"]); err == nil {
		rec["window_days"] = int64(d)
	}
	summary := fmt.Sprintf("%s signal %s %s", kind, sg.GetReason(), verb)
	if sg.GetMessage() != "" {
		summary += ": " + sg.GetMessage()
	}
	return s.fireAll(t, a, []trigger{{kind: tk, account: sg.GetAccountId(), at: at, record: rec, summary: summary}}, sc, src)
}

// ApplyRouting applies the records of routing replica k's log:
// assignments (new, reassigned, closed) and SLA events.
func (s *Service) ApplyRouting(tx *pstore.Tx, k int, p uint32, recs []*routingv1.LogRecord) error {
	return s.applyRouting(tx, p, recs, scope{log: stream.ReplicaName("routing", k)})
}

func (s *Service) applyRouting(tx *pstore.Tx, p uint32, recs []*routingv1.LogRecord, sc scope) error {
	for _, r := range recs {
		src := sc.src(p, r.GetOffset())
		switch {
		case r.GetAssignment() != nil:
			if err := s.applyAssignment(tx, r.GetAssignment(), sc, src); err != nil {
				return err
			}
		case r.GetSlaEvent() != nil:
			if err := s.applySLA(tx, r.GetSlaEvent(), sc, src); err != nil {
				return err
			}
		case r.GetTombstone() != nil:
			if err := s.forget(tx, r.GetTombstone(), sc); err != nil {
				return err
			}
		}
	}
	return nil
}

// roles maps a handoff type to the account role its owner takes.
func role(t routingv1.HandoffType) string {
	switch t {
	case routingv1.HandoffType_HANDOFF_TYPE_MQL, routingv1.HandoffType_HANDOFF_TYPE_PQL:
		return "sdr"
	case routingv1.HandoffType_HANDOFF_TYPE_SQL:
		return "ae"
	case routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON, routingv1.HandoffType_HANDOFF_TYPE_RENEWAL, routingv1.HandoffType_HANDOFF_TYPE_RISK:
		return "csm"
	}
	return ""
}

func (s *Service) applyAssignment(tx *pstore.Tx, as *routingv1.Assignment, sc scope, src string) error {
	t := sc.tx(tx, as.GetWorkspace())
	typ := strings.ToLower(strings.TrimPrefix(as.GetType().String(), "HANDOFF_TYPE_"))
	state := strings.ToLower(strings.TrimPrefix(as.GetState().String(), "ASSIGNMENT_STATE_"))
	prev, seen, err := t.Assignment(as.GetAssignmentId())
	if err != nil {
		return err
	}
	account := as.GetAccountId()
	if err := t.PutAssignment(as.GetAssignmentId(), &store.Assignment{Account: account, Type: typ, Owner: as.GetOwnerId(), State: state}); err != nil {
		return err
	}
	if account == "" {
		return nil // a lead without an account: nothing to act on here
	}
	a, err := t.Account(account)
	if err != nil {
		return err
	}
	if l := as.GetLead(); l != nil {
		if l.GetName() != "" {
			a.Name = l.GetName()
		}
		if l.GetSegment() != "" {
			a.Segment = l.GetSegment()
		}
	}
	if r := role(as.GetType()); r != "" && as.GetOwnerId() != "" && state != "closed" && a.Owners[r] != as.GetOwnerId() {
		if a.Owners == nil {
			a.Owners = map[string]string{}
		}
		a.Owners[r] = as.GetOwnerId()
		if !t.Replaying() {
			if err := s.assignOpenTasks(t, account, r, as.GetOwnerId()); err != nil {
				return err
			}
		}
	}
	if err := t.PutAccount(a); err != nil {
		return err
	}
	rec := map[string]any{
		"assignment_id": as.GetAssignmentId(), "type": typ, "owner_id": as.GetOwnerId(), "state": state,
		"reason": as.GetReason(), "rule": as.GetDecision().GetRule(), "at": as.GetCreatedAt().AsTime(),
	}
	why := ""
	if r := as.GetDecision().GetRule(); r != "" {
		why = " (rule " + r + ")"
	}
	var trig trigger
	switch {
	case !seen:
		trig = trigger{kind: "assignment.created", summary: fmt.Sprintf("%s handoff assigned to %s%s", strings.ToUpper(typ), ownerOr(as.GetOwnerId()), why)}
	case state == "closed" && prev.State != "closed":
		trig = trigger{kind: "assignment.closed", summary: fmt.Sprintf("%s handoff closed %s", strings.ToUpper(typ), as.GetCloseReason())}
	case as.GetOwnerId() != prev.Owner && as.GetOwnerId() != "":
		trig = trigger{kind: "assignment.reassigned", summary: fmt.Sprintf("%s handoff reassigned from %s to %s", strings.ToUpper(typ), ownerOr(prev.Owner), as.GetOwnerId())}
	default:
		return nil
	}
	trig.account, trig.at, trig.record = account, at(as), rec
	return s.fireAll(t, a, []trigger{trig}, sc, src)
}

// at is when an assignment record happened: its creation, or its first
// touch when that is later.
func at(as *routingv1.Assignment) time.Time {
	t := as.GetCreatedAt().AsTime()
	if ft := as.GetFirstTouchAt(); ft != nil && ft.AsTime().After(t) {
		t = ft.AsTime()
	}
	return t
}

func ownerOr(id string) string {
	if id == "" {
		return "nobody yet"
	}
	return id
}

func (s *Service) applySLA(tx *pstore.Tx, ev *routingv1.SlaEvent, sc scope, src string) error {
	t := sc.tx(tx, ev.GetWorkspace())
	if as := ev.GetAssignment(); as != nil {
		// A breach that changed the assignment carries it: remember the
		// new state without firing an assignment trigger for it.
		typ := strings.ToLower(strings.TrimPrefix(as.GetType().String(), "HANDOFF_TYPE_"))
		state := strings.ToLower(strings.TrimPrefix(as.GetState().String(), "ASSIGNMENT_STATE_"))
		if err := t.PutAssignment(as.GetAssignmentId(), &store.Assignment{Account: as.GetAccountId(), Type: typ, Owner: as.GetOwnerId(), State: state}); err != nil {
			return err
		}
	}
	as, ok, err := t.Assignment(ev.GetAssignmentId())
	if err != nil || !ok || as.Account == "" {
		return err
	}
	a, err := t.Account(as.Account)
	if err != nil {
		return err
	}
	// Routing's event kinds fold onto the trigger vocabulary; record.kind
	// keeps the exact one (warning_50, met_late, manager_notified, ...).
	var kind string
	switch k := ev.GetKind(); {
	case strings.HasPrefix(k, "warning"):
		kind = play.SLAWarning
	case k == "breach":
		kind = play.SLABreach
	case k == "escalation" || k == "manager_notified":
		kind = play.SLAEscalation
	case k == "met" || k == "met_late":
		kind = play.SLAMet
	default:
		return nil // a kind this version does not know: nothing to match
	}
	rec := map[string]any{
		"kind": ev.GetKind(), "assignment_id": ev.GetAssignmentId(), "owner_id": ev.GetOwnerId(),
		"new_owner_id": ev.GetNewOwnerId(), "type": as.Type, "at": ev.GetAt().AsTime(),
	}
	summary := fmt.Sprintf("%s SLA %s for %s", strings.ToUpper(as.Type), strings.ReplaceAll(ev.GetKind(), "_", " "), ownerOr(ev.GetOwnerId()))
	if ev.GetNewOwnerId() != "" {
		summary += ", escalated to " + ev.GetNewOwnerId()
	}
	return s.fireAll(t, a, []trigger{{kind: kind, account: as.Account, at: ev.GetAt().AsTime(), record: rec, summary: summary}}, sc, src)
}

// forget erases an account deleted upstream (right to be forgotten). A
// replay that reads the tombstone erases what it made for the account too.
func (s *Service) forget(tx *pstore.Tx, ts *commonv1.Tombstone, sc scope) error {
	if ts.GetAccountId() == "" {
		return nil // a single user: plays holds no per-user data
	}
	if sc.replay != "" {
		if err := sc.tx(tx, ts.GetWorkspace()).ForgetFacts(ts.GetAccountId()); err != nil {
			return err
		}
	}
	return store.In(tx, ts.GetWorkspace()).Forget(ts.GetAccountId())
}

func bandName(b healthv1.Band) string {
	if b == healthv1.Band_BAND_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(b.String(), "BAND_"))
}

// words turns an id like "at_risk" into "at risk".
func words(id string) string { return strings.ReplaceAll(id, "_", " ") }
