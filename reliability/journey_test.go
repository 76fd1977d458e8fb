package reliability

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
)

// The journey-truth scenarios (docs/reliability.md, "TestJourneyTruth") run
// the B2B SaaS playbook through the real binaries: every event carries an
// explicit time relative to t0, the wall clock when the test starts, so that
// the services (on the real clock) judge every time rule the same way on
// every run: nothing is close to a window's edge, and every SLA deadline of
// the scenarios is either well past or well ahead.

// Workspaces of the late-event scenario: the same events sent in time order
// and shuffled.
const (
	wsOrdered  = "jt-ordered"
	wsShuffled = "jt-shuffled"
)

// journeyRoutingYAML is routingYAML plus a 30-minute MQL SLA, so that an
// untouched MQL from two hours ago has breached by the time routing reads it.
const journeyRoutingYAML = routingYAML + `sla_policies:
  - {name: fast-mql, type: mql, within: 30m, satisfied_by: [contacted, meeting_booked]}
`

// setupJourneyRouting stores one owner per pool, each working around the
// clock (business time = wall time, so the SLA outcome does not depend on
// the hour or weekday the test runs at), and applies journeyRoutingYAML.
func setupJourneyRouting(ctx context.Context, c routingv1.RoutingServiceClient, ws string) error {
	var hours []*routingv1.WorkingHours
	for d := range 7 {
		hours = append(hours, &routingv1.WorkingHours{Weekday: int32(d), Start: "00:00", End: "24:00"})
	}
	for _, o := range []struct {
		id, pool string
		team     routingv1.Team
	}{
		{"sam", "sdr-pool", routingv1.Team_TEAM_SDR},
		{"olivia", "ae-pool", routingv1.Team_TEAM_AE},
		{"nora", "cs-pool", routingv1.Team_TEAM_CSM},
	} {
		if _, err := c.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Workspace: ws, Owner: &routingv1.Owner{
			OwnerId: o.id, Name: o.id, Email: o.id + "@cairn.example", Team: o.team, TimeZone: "UTC", WorkingHours: hours,
		}}); err != nil {
			return fmt.Errorf("upsert owner %s: %w", o.id, err)
		}
		if _, err := c.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Workspace: ws, Pool: &routingv1.Pool{
			PoolId: o.pool, Name: o.pool, OwnerIds: []string{o.id}, Strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN,
		}}); err != nil {
			return fmt.Errorf("upsert pool %s: %w", o.pool, err)
		}
	}
	if _, err := c.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Workspace: ws, Yaml: journeyRoutingYAML}); err != nil {
		return fmt.Errorf("apply routing rules: %w", err)
	}
	return nil
}

// jstep is one event of a scenario account, at t0 + at.
type jstep struct {
	user  int
	kind  string // "group", "identify" or a track event name
	at    time.Duration
	props map[string]any
}

const day = 24 * time.Hour

// Scenario accounts.
const (
	acctProspect  = "jt-prospect"
	acctTrial     = "jt-trial"
	acctSales     = "jt-sales"
	acctChurn     = "jt-churn"
	acctWinBack   = "jt-winback"
	acctSLAMet    = "jt-sla-met"
	acctSLABreach = "jt-sla-breach"
	acctSLAOpen   = "jt-sla-open"
)

var journeyAccounts = []string{acctProspect, acctTrial, acctSales, acctChurn, acctWinBack, acctSLAMet, acctSLABreach, acctSLAOpen}

// purchase is a sales-led purchase at t0 + at: MQL, contact, SQL, closed
// won, subscription with ARR and the contract.
func purchase(at time.Duration, arr float64, t0 time.Time) []jstep {
	return []jstep{
		{0, "demo_requested", at - 8*day, nil},
		{0, "crm.mql", at - 7*day, map[string]any{"lead_id": "L-1", "score": 80.0}},
		{0, "crm.contacted", at - 7*day + 10*time.Minute, map[string]any{"channel": "call"}},
		{0, "crm.sql_accepted", at - 5*day, map[string]any{"lead_id": "L-1"}},
		{1, "crm.closed_won", at, map[string]any{"amount": arr}},
		{1, "billing.subscription_started", at + time.Hour, map[string]any{"plan": "business", "seats": 20.0, "arr": arr}},
		{1, "billing.contract_updated", at + 2*time.Hour, map[string]any{
			"plan": "business", "seats": 20.0, "arr": arr,
			"contract_start": t0.Add(at).Format(time.RFC3339), "contract_end": t0.Add(at + 365*day).Format(time.RFC3339),
		}},
	}
}

// usage is product use by users 0..2 every other day from t0+from to t0+to.
func usage(from, to time.Duration) []jstep {
	features := []string{"report_created", "dashboard_shared", "alert_configured", "export_run"}
	var out []jstep
	i := 0
	for at := from; at <= to; at += 2 * day {
		out = append(out, jstep{i % 3, features[i%len(features)], at, nil})
		i++
	}
	return out
}

// journeyScript is every scenario account's events, each account's in time
// order.
func journeyScript(t0 time.Time) map[string][]jstep {
	head := func(from time.Duration) []jstep {
		return []jstep{{0, "group", from, nil}, {0, "identify", from, nil}, {1, "identify", from, nil}, {2, "identify", from, nil}}
	}
	cat := func(parts ...[]jstep) []jstep { return slices.Concat(parts...) }
	return map[string][]jstep{
		// Web and content only: a prospect.
		acctProspect: cat(head(-20*day), []jstep{
			{0, "content_viewed", -10 * day, nil}, {0, "webinar_attended", -9 * day, nil}, {1, "email_clicked", -4 * day, nil},
		}),
		// A product-led trial, not converted.
		acctTrial: cat(head(-15*day), []jstep{
			{0, "content_viewed", -14 * day, nil}, {0, "trial_started", -12 * day, nil},
		}, usage(-11*day, -1*day)),
		// Sales-led customer, using the product.
		acctSales: cat(head(-45*day), purchase(-30*day, 30000, t0), []jstep{
			{0, "setup_completed", -28 * day, nil}, {0, "activated", -27 * day, nil}, {0, "integration_connected", -26 * day, nil},
		}, usage(-25*day, -1*day)),
		// A customer that churns after tickets and a detractor NPS.
		acctChurn: cat(head(-70*day), purchase(-50*day, 24000, t0), []jstep{
			{0, "setup_completed", -48 * day, nil}, {0, "activated", -47 * day, nil},
		}, usage(-45*day, -20*day), []jstep{
			{2, "support.ticket_opened", -10 * day, map[string]any{"ticket_id": "T-1", "priority": "p1"}},
			{2, "survey.nps", -8 * day, map[string]any{"score": 1.0}},
			{1, "billing.churned", -2 * day, map[string]any{"reason": "moved to competitor", "arr": 24000.0}},
		}),
		// A customer that churned and was won back.
		acctWinBack: cat(head(-90*day), purchase(-75*day, 18000, t0), usage(-70*day, -40*day), []jstep{
			{1, "billing.churned", -30 * day, map[string]any{"reason": "budget", "arr": 18000.0}},
			{1, "crm.closed_won", -6 * day, map[string]any{"amount": 20000.0}},
			{1, "billing.subscription_started", -6*day + time.Hour, map[string]any{"plan": "business", "seats": 15.0, "arr": 20000.0}},
		}, usage(-5*day, -1*day)),
		// MQLs under the 30-minute SLA: touched in time, never touched, and
		// too recent to be due.
		acctSLAMet: cat(head(-3*time.Hour), []jstep{
			{0, "content_viewed", -3 * time.Hour, nil},
			{0, "crm.mql", -2 * time.Hour, map[string]any{"score": 70.0}},
			{0, "crm.contacted", -2*time.Hour + 10*time.Minute, map[string]any{"channel": "email"}},
		}),
		acctSLABreach: cat(head(-3*time.Hour), []jstep{
			{0, "content_viewed", -3 * time.Hour, nil},
			{0, "crm.mql", -2 * time.Hour, map[string]any{"score": 70.0}},
		}),
		acctSLAOpen: cat(head(-3*time.Hour), []jstep{
			{0, "content_viewed", -3 * time.Hour, nil},
			{0, "crm.mql", -5 * time.Minute, map[string]any{"score": 70.0}},
		}),
	}
}

// journeyEvents turns the script into events, sorted by event time (then
// message id); message ids are stable, so two workspaces get the same ids.
func journeyEvents(t0 time.Time) []*ingestionv1.Event {
	var events []*ingestionv1.Event
	for acct, steps := range journeyScript(t0) {
		for i, st := range steps {
			user := fmt.Sprintf("%s-u%d", acct, st.user)
			ev := &ingestionv1.Event{
				MessageId: fmt.Sprintf("%s-%03d", acct, i),
				UserId:    user,
				Timestamp: timestamppb.New(t0.Add(st.at)),
				Context:   fields(map[string]any{"groupId": acct}),
			}
			switch st.kind {
			case "group":
				ev.Type, ev.GroupId = ingestionv1.EventType_EVENT_TYPE_GROUP, acct
				ev.Traits = fields(map[string]any{"name": "Account " + acct, "segment": "mid-market", "plan": "business"})
			case "identify":
				ev.Type = ingestionv1.EventType_EVENT_TYPE_IDENTIFY
				ev.Traits = fields(map[string]any{"email": user + "@" + acct + ".example", "role": "champion"})
			default:
				ev.Type, ev.Event = ingestionv1.EventType_EVENT_TYPE_TRACK, st.kind
				if len(st.props) > 0 {
					ev.Properties = fields(st.props)
				}
			}
			events = append(events, ev)
		}
	}
	sortByTime(events)
	return events
}

func sortByTime(events []*ingestionv1.Event) {
	slices.SortStableFunc(events, func(a, b *ingestionv1.Event) int {
		return cmp.Or(a.GetTimestamp().AsTime().Compare(b.GetTimestamp().AsTime()), strings.Compare(a.GetMessageId(), b.GetMessageId()))
	})
}

// addWorkspace creates admin, write and read keys of ws in the suite's
// keyring (before the processes start, which load it).
func (s *suite) addWorkspace(ws string) keys {
	s.t.Helper()
	kr, err := auth.LoadKeyring(s.keyring)
	if err != nil {
		s.t.Fatalf("load keyring: %v", err)
	}
	var k keys
	for _, r := range []struct {
		role auth.Role
		dst  *string
	}{{auth.RoleAdmin, &k.admin}, {auth.RoleWrite, &k.write}, {auth.RoleRead, &k.read}} {
		if *r.dst, err = kr.Create(ws, r.role); err != nil {
			s.t.Fatalf("create %s key of %s: %v", r.role, ws, err)
		}
	}
	return k
}

// ingestAll sends events in the given order, in batches, and requires every
// event accepted.
func (s *suite) ingestAll(t *testing.T, ctx context.Context, ws string, k keys, events []*ingestionv1.Event) {
	t.Helper()
	c := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", k.write))
	const size = 40
	for i := 0; i < len(events); i += size {
		batch := events[i:min(i+size, len(events))]
		resp, _, err := sendBatch(ctx, c, batch)
		if err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
		for _, r := range resp.GetResults() {
			if r.GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED {
				t.Fatalf("%s: event %s: %v %s %s", ws, r.GetMessageId(), r.GetStatus(), r.GetField(), r.GetReason())
			}
		}
	}
}

// acctView is what the three services say about one account.
type acctView struct {
	journey *stagesv1.AccountJourney // nil: stages does not know it
	health  *healthv1.AccountHealth  // nil: health does not know it
	assigns []*routingv1.Assignment
}

func (s *suite) readAccount(ctx context.Context, ws, token, acct string) (acctView, error) {
	var v acctView
	j, err := stagesv1.NewStagesServiceClient(s.conn("stages", token)).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{Workspace: ws, AccountId: acct})
	if err != nil {
		return v, fmt.Errorf("stages journey of %s/%s: %w", ws, acct, err)
	}
	v.journey = j.GetJourney()
	h, err := healthv1.NewHealthServiceClient(s.conn("health", token)).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{Workspace: ws, AccountId: acct})
	if err != nil {
		return v, fmt.Errorf("health of %s/%s: %w", ws, acct, err)
	}
	v.health = h.GetHealth()
	req := &routingv1.ListAssignmentsRequest{Workspace: ws, AccountId: acct, Page: &commonv1.PageRequest{PageSize: 1000}}
	r, err := routingv1.NewRoutingServiceClient(s.conn("routing", token)).ListAssignments(ctx, req)
	if err != nil {
		return v, fmt.Errorf("assignments of %s/%s: %w", ws, acct, err)
	}
	v.assigns = r.GetAssignments()
	return v, nil
}

// facts are the comparable facts of one account, by name; wall-clock
// values (computation times, time in stage, ids, trends, SLA used time) are
// left out.
func (v acctView) facts() map[string]string {
	f := map[string]string{}
	j, h := v.journey, v.health
	f["stages.stage"] = j.GetStage()
	f["stages.status"] = j.GetLifecycle().GetStatus().String()
	var lc []string
	for _, c := range j.GetLifecycle().GetHistory() {
		lc = append(lc, fmt.Sprintf("%s@%s by %s", c.GetStatus(), c.GetAt().AsTime().Format(time.RFC3339), c.GetEvent()))
	}
	f["stages.lifecycle"] = strings.Join(lc, " > ")
	var hist []string
	for _, tr := range j.GetHistory() {
		hist = append(hist, fmt.Sprintf("%s->%s@%s(%s)", tr.GetFromStage(), tr.GetToStage(), tr.GetAt().AsTime().Format(time.RFC3339), tr.GetCause()))
	}
	f["stages.history"] = strings.Join(hist, " | ")
	f["stages.signals"] = signalList(j.GetOpenSignals())
	f["health.status"] = h.GetLifecycle().GetStatus().String()
	f["health.scored"] = fmt.Sprint(h.GetScored())
	f["health.score"] = fmt.Sprintf("%.4f", h.GetScore())
	f["health.band"] = h.GetBand().String()
	f["health.stage"] = h.GetStage()
	f["health.arr"] = fmt.Sprintf("%.2f", h.GetArr())
	f["health.signals"] = signalList(h.GetOpenSignals())
	var comps []string
	for _, c := range h.GetComponents() {
		comps = append(comps, fmt.Sprintf("%s=%.2f", c.GetName(), c.GetPoints()))
	}
	f["health.components"] = strings.Join(comps, " ")
	var as []string
	for _, a := range v.assigns {
		as = append(as, fmt.Sprintf("%s %s owner=%s close=%q breached=%v met=%v late=%v", a.GetType(), a.GetState(), a.GetOwnerId(), a.GetCloseReason(),
			a.GetSla().GetBreached(), a.GetSla().GetMetAt() != nil, a.GetSla().GetMetLate()))
	}
	sort.Strings(as)
	f["routing.assignments"] = strings.Join(as, "; ")
	return f
}

func signalList(sigs []*commonv1.Signal) string {
	var out []string
	for _, sg := range sigs {
		out = append(out, sg.GetKind().String()+"/"+sg.GetReason())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// wsFacts reads the facts of every account of ws, keyed "<fact>/<account>".
func (s *suite) wsFacts(ctx context.Context, ws, token string, accounts []string) (snapshot, error) {
	snap := snapshot{}
	for _, a := range accounts {
		v, err := s.readAccount(ctx, ws, token, a)
		if err != nil {
			return nil, err
		}
		for k, val := range v.facts() {
			snap[k+"/"+a] = val
		}
	}
	return snap, nil
}

// wsRead is the read key of a workspace and the accounts to read.
type wsRead struct {
	token    string
	accounts []string
}

// settleFacts waits until every consumer has caught up with ingestion and
// two reads of every workspace's facts agree, within a bounded guard.
func (s *suite) settleFacts(ctx context.Context, reads map[string]wsRead) (map[string]snapshot, error) {
	guard, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var prev map[string]snapshot
	why := ""
	for {
		ok, w, err := s.caughtUp(guard)
		switch {
		case err != nil:
			why = err.Error()
		case !ok:
			why = w
		default:
			cur := map[string]snapshot{}
			for ws, r := range reads {
				if cur[ws], err = s.wsFacts(guard, ws, r.token, r.accounts); err != nil {
					break
				}
			}
			if err != nil {
				why = err.Error()
				break
			}
			same := prev != nil
			for ws := range cur {
				if same && len(prev[ws].diff(cur[ws], 1, all)) > 0 {
					same = false
				}
			}
			if same {
				return cur, nil
			}
			prev, why = cur, "state still changing"
		}
		select {
		case <-guard.Done():
			return nil, fmt.Errorf("consumers did not settle within the guard: %s", why)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestJourneyTruth runs the B2B SaaS playbook's lifecycle, SLA and
// late-event scenarios on one suite (ingestion, stages, health, routing),
// in three workspaces: rel-ws (lifecycle and SLA), jt-ordered and
// jt-shuffled (the same events in time order and shuffled).
func TestJourneyTruth(t *testing.T) {
	s := newSuite(t)
	ordered, shuffled := s.addWorkspace(wsOrdered), s.addWorkspace(wsShuffled)
	for _, name := range append(append([]string{}, services...), "gateway") {
		s.start(name)
	}
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Second)
	wsKeys := map[string]keys{workspace: s.keys, wsOrdered: ordered, wsShuffled: shuffled}
	for ws, k := range wsKeys {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := setupJourneyRouting(actx, routingv1.NewRoutingServiceClient(s.conn("routing", k.admin)), ws)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", ws, err)
		}
	}

	// The lifecycle and SLA workspace gets the scenario accounts in time
	// order; the late-event pair gets them plus a seeded workload, in time
	// order and shuffled.
	events := journeyEvents(t0)
	s.ingestAll(t, ctx, workspace, s.keys, events)
	extra := workload(11, 8, t0)
	late := append(append([]*ingestionv1.Event{}, events...), extra...)
	sortByTime(late)
	s.ingestAll(t, ctx, wsOrdered, ordered, late)
	mixed := append([]*ingestionv1.Event{}, late...)
	rand.New(rand.NewPCG(2026, 12)).Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
	s.ingestAll(t, ctx, wsShuffled, shuffled, mixed)
	t.Logf("ingested %d events into %s and %d into each of %s and %s", len(events), workspace, len(late), wsOrdered, wsShuffled)

	lateAccounts := append([]string{}, journeyAccounts...)
	for i := range 8 {
		lateAccounts = append(lateAccounts, fmt.Sprintf("acct-%03d", i))
	}
	facts, err := s.settleFacts(ctx, map[string]wsRead{
		workspace:  {s.keys.read, journeyAccounts},
		wsOrdered:  {ordered.read, lateAccounts},
		wsShuffled: {shuffled.read, lateAccounts},
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Lifecycle", func(t *testing.T) { checkLifecycle(t, ctx, s, facts[workspace]) })
	t.Run("Gateway", func(t *testing.T) { checkJourneyREST(t, ctx, s, facts[workspace]) })
	t.Run("ServicesAgree", func(t *testing.T) { checkServicesAgree(t, facts[workspace], journeyAccounts) })
	t.Run("MQLSLA", func(t *testing.T) { checkSLA(t, ctx, s) })
	t.Run("LateEvents", func(t *testing.T) { checkLateEvents(t, facts[wsOrdered], facts[wsShuffled]) })
}

// checkLifecycle checks each lifecycle account's status and stage in
// stages, health's scoring and lists, and routing's handoffs.
func checkLifecycle(t *testing.T, ctx context.Context, s *suite, f snapshot) {
	for _, c := range []struct {
		acct   string
		status commonv1.AccountStatus
		scored bool
	}{
		{acctProspect, commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, false},
		{acctTrial, commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, false},
		{acctSales, commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, true},
		{acctChurn, commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED, false},
		{acctWinBack, commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK, true},
	} {
		if got := f["stages.status/"+c.acct]; got != c.status.String() {
			t.Errorf("%s: stages status %s, want %s", c.acct, got, c.status)
		}
		if got := f["health.status/"+c.acct]; got != c.status.String() {
			t.Errorf("%s: health status %s, want %s", c.acct, got, c.status)
		}
		if got := f["health.scored/"+c.acct]; got != fmt.Sprint(c.scored) {
			t.Errorf("%s: health scored %s, want %v", c.acct, got, c.scored)
		}
		stage := f["stages.stage/"+c.acct]
		if c.status == commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED {
			if stage != "" {
				t.Errorf("%s: churned but in stage %q", c.acct, stage)
			}
		} else if stage == "" {
			t.Errorf("%s (%s): in no stage", c.acct, c.status)
		}
		if !c.scored && c.status != commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED {
			if f["health.score/"+c.acct] != "0.0000" || f["health.band/"+c.acct] != healthv1.Band_BAND_UNSPECIFIED.String() {
				t.Errorf("%s: not scored but score %s band %s", c.acct, f["health.score/"+c.acct], f["health.band/"+c.acct])
			}
		}
		if c.scored && f["health.band/"+c.acct] == healthv1.Band_BAND_UNSPECIFIED.String() {
			t.Errorf("%s: scored without a band", c.acct)
		}
	}
	if got := f["stages.lifecycle/"+acctWinBack]; !strings.Contains(got, "ACCOUNT_STATUS_CHURNED") {
		t.Errorf("%s: lifecycle history %q has no churn", acctWinBack, got)
	}

	// Stages: live list, churned list, funnel.
	st := stagesv1.NewStagesServiceClient(s.conn("stages", s.keys.read))
	live, err := st.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Workspace: workspace, Page: &commonv1.PageRequest{PageSize: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	liveIDs := map[string]commonv1.AccountStatus{}
	for _, a := range live.GetAccounts() {
		liveIDs[a.GetAccountId()] = a.GetStatus()
	}
	if _, ok := liveIDs[acctChurn]; ok {
		t.Errorf("stages ListAccounts (live) lists churned %s", acctChurn)
	}
	for _, a := range []string{acctProspect, acctTrial, acctSales, acctWinBack} {
		if got := liveIDs[a].String(); got != f["stages.status/"+a] {
			t.Errorf("stages ListAccounts: %s status %s, journey says %s", a, got, f["stages.status/"+a])
		}
	}
	churned, err := st.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Workspace: workspace, Status: []commonv1.AccountStatus{commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED}, Page: &commonv1.PageRequest{PageSize: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	var churnedIDs []string
	for _, a := range churned.GetAccounts() {
		churnedIDs = append(churnedIDs, a.GetAccountId())
	}
	if !slices.Equal(churnedIDs, []string{acctChurn}) {
		t.Errorf("stages ListAccounts(status churned) = %v, want [%s]", churnedIDs, acctChurn)
	}
	fun, err := st.GetFunnel(ctx, &stagesv1.GetFunnelRequest{Workspace: workspace})
	if err != nil {
		t.Fatal(err)
	}
	var current, stageChurned int64
	for _, row := range fun.GetStages() {
		current += row.GetCurrent()
		stageChurned += row.GetChurned()
	}
	if fun.GetChurned() != 1 {
		t.Errorf("funnel churned = %d, want 1 (%s)", fun.GetChurned(), acctChurn)
	}
	// Two churn stays: jt-churn's and jt-winback's earlier one.
	if stageChurned != 2 {
		t.Errorf("funnel stages' churned stays = %d, want 2 (%s, and %s before its win-back)", stageChurned, acctChurn, acctWinBack)
	}
	if n := int64(len(journeyAccounts)); fun.GetTotalAccounts() != n {
		t.Errorf("funnel total_accounts = %d, want %d", fun.GetTotalAccounts(), n)
	}
	if current+fun.GetChurned()+fun.GetNotPlaced() != fun.GetTotalAccounts() || fun.GetAccounts() != fun.GetTotalAccounts()-fun.GetChurned() {
		t.Errorf("funnel does not add up: current %d + churned %d + not placed %d vs total %d; accounts %d", current, fun.GetChurned(), fun.GetNotPlaced(), fun.GetTotalAccounts(), fun.GetAccounts())
	}

	// Health lists: paying accounts only.
	he := healthv1.NewHealthServiceClient(s.conn("health", s.keys.read))
	for _, band := range []healthv1.Band{healthv1.Band_BAND_UNSPECIFIED, healthv1.Band_BAND_AT_RISK} {
		r, err := he.ListAccounts(ctx, &healthv1.ListAccountsRequest{Workspace: workspace, Band: band, Page: &commonv1.PageRequest{PageSize: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range r.GetAccounts() {
			switch row.GetAccountId() {
			case acctProspect, acctTrial, acctChurn, acctSLAMet, acctSLABreach, acctSLAOpen:
				t.Errorf("health ListAccounts(band %s) lists %s (%s), not a paying account", band, row.GetAccountId(), f["stages.status/"+row.GetAccountId()])
			}
		}
	}

	// Routing: the churned account's pending handoffs were closed.
	var closed int
	for _, line := range strings.Split(f["routing.assignments/"+acctChurn], "; ") {
		if line == "" {
			continue
		}
		for _, st := range []string{"OPEN", "BREACHED", "PAUSED", "UNASSIGNED"} {
			if strings.Contains(line, "ASSIGNMENT_STATE_"+st+" ") {
				t.Errorf("%s (churned) has a pending handoff: %s", acctChurn, line)
			}
		}
		if strings.Contains(line, "ASSIGNMENT_STATE_CLOSED") {
			if !strings.Contains(line, `close="churned"`) {
				t.Errorf("%s: handoff closed without close_reason churned: %s", acctChurn, line)
			}
			closed++
		}
	}
	if closed == 0 {
		t.Errorf("%s: no handoff closed with close_reason churned: %s", acctChurn, f["routing.assignments/"+acctChurn])
	}
	ro := routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.read))
	q, err := ro.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Workspace: workspace, OpenQueue: true, Page: &commonv1.PageRequest{PageSize: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range q.GetAssignments() {
		if a.GetAccountId() == acctChurn {
			t.Errorf("open queue holds %s of churned %s", a.GetType(), acctChurn)
		}
	}
	// The won-back account is live again: the win-back's closed-won
	// handoff opened (and, 6 days later under a 5-business-day SLA on
	// round-the-clock hours, breached), besides the one closed at the churn.
	if wb := f["routing.assignments/"+acctWinBack]; !strings.Contains(wb, `HANDOFF_TYPE_CLOSED_WON ASSIGNMENT_STATE_BREACHED owner=nora close=""`) ||
		!strings.Contains(wb, `HANDOFF_TYPE_CLOSED_WON ASSIGNMENT_STATE_CLOSED owner=nora close="churned"`) {
		t.Errorf("%s: want a CLOSED_WON handoff closed at the churn and a pending one after the win-back: %s", acctWinBack, wb)
	}
}

// restGet reads one gateway REST answer into out.
func restGet(t *testing.T, ctx context.Context, s *suite, path string, out proto.Message) {
	t.Helper()
	code, body := s.rest(t, ctx, http.MethodGet, path, s.keys.read, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: decode: %v\n%s", path, err, body)
	}
}

// checkJourneyREST reads the lifecycle through the gateway's REST API, as the
// dashboard does: the same answers as the services' gRPC.
func checkJourneyREST(t *testing.T, ctx context.Context, s *suite, f snapshot) {
	for _, a := range []string{acctProspect, acctTrial, acctSales, acctChurn, acctWinBack} {
		var j stagesv1.GetAccountJourneyResponse
		restGet(t, ctx, s, "/v1/accounts/"+a+"/journey", &j)
		var h healthv1.GetAccountHealthResponse
		restGet(t, ctx, s, "/v1/accounts/"+a+"/health", &h)
		if got := j.GetJourney().GetLifecycle().GetStatus().String(); got != f["stages.status/"+a] {
			t.Errorf("REST journey of %s: status %s, gRPC %s", a, got, f["stages.status/"+a])
		}
		if got := j.GetJourney().GetStage(); got != f["stages.stage/"+a] {
			t.Errorf("REST journey of %s: stage %q, gRPC %q", a, got, f["stages.stage/"+a])
		}
		if got := fmt.Sprint(h.GetHealth().GetScored()); got != f["health.scored/"+a] {
			t.Errorf("REST health of %s: scored %s, gRPC %s", a, got, f["health.scored/"+a])
		}
	}
	var fun stagesv1.GetFunnelResponse
	restGet(t, ctx, s, "/v1/funnel", &fun)
	if fun.GetChurned() != 1 || fun.GetTotalAccounts() != int64(len(journeyAccounts)) {
		t.Errorf("REST funnel: churned %d total %d, want 1 and %d", fun.GetChurned(), fun.GetTotalAccounts(), len(journeyAccounts))
	}
	var live stagesv1.ListAccountsResponse
	restGet(t, ctx, s, "/v1/journey/accounts", &live)
	var risk healthv1.ListAccountsResponse
	restGet(t, ctx, s, "/v1/health/accounts?band=BAND_AT_RISK", &risk)
	for _, a := range live.GetAccounts() {
		if a.GetAccountId() == acctChurn {
			t.Errorf("REST live journey list holds churned %s", acctChurn)
		}
	}
	for _, a := range risk.GetAccounts() {
		if a.GetAccountId() != acctSales && a.GetAccountId() != acctWinBack {
			t.Errorf("REST at-risk list holds %s (%s), not a paying account", a.GetAccountId(), f["stages.status/"+a.GetAccountId()])
		}
	}
}

// checkServicesAgree requires stages and health to read every account's
// events the same way: status, lifecycle and stage.
func checkServicesAgree(t *testing.T, f snapshot, accounts []string) {
	for _, a := range accounts {
		if f["stages.status/"+a] != f["health.status/"+a] {
			t.Errorf("%s: stages says %s, health says %s", a, f["stages.status/"+a], f["health.status/"+a])
		}
		if f["stages.status/"+a] == commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED.String() {
			continue // the churned account's stage: below
		}
		if f["stages.stage/"+a] != f["health.stage/"+a] {
			t.Errorf("%s: stages stage %q, health stage %q", a, f["stages.stage/"+a], f["health.stage/"+a])
		}
	}
	t.Run("StageOfChurnedAccount", func(t *testing.T) {
		if f["stages.stage/"+acctChurn] != f["health.stage/"+acctChurn] {
			t.Errorf("%s: stages stage %q, health stage %q", acctChurn, f["stages.stage/"+acctChurn], f["health.stage/"+acctChurn])
		}
	})
}

// checkSLA checks the three MQLs under the 30-minute SLA.
func checkSLA(t *testing.T, ctx context.Context, s *suite) {
	ro := routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.read))
	one := func(acct string) *routingv1.Assignment {
		r, err := ro.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Workspace: workspace, AccountId: acct, Type: routingv1.HandoffType_HANDOFF_TYPE_MQL})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(r.GetAssignments()); n != 1 {
			t.Fatalf("%s: %d MQL assignments, want 1", acct, n)
		}
		a := r.GetAssignments()[0]
		if a.GetSla().GetPolicy() != "fast-mql" || a.GetOwnerId() != "sam" {
			t.Errorf("%s: policy %q owner %q, want fast-mql and sam", acct, a.GetSla().GetPolicy(), a.GetOwnerId())
		}
		return a
	}
	now := time.Now()
	if a := one(acctSLAMet); a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED || a.GetSla().GetMetAt() == nil || a.GetSla().GetBreached() {
		t.Errorf("%s: state %s met_at %v breached %v, want TOUCHED, met, not breached", acctSLAMet, a.GetState(), a.GetSla().GetMetAt(), a.GetSla().GetBreached())
	}
	if a := one(acctSLABreach); a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED || !a.GetSla().GetBreached() || a.GetSla().GetMetAt() != nil {
		t.Errorf("%s: state %s breached %v met_at %v, want BREACHED", acctSLABreach, a.GetState(), a.GetSla().GetBreached(), a.GetSla().GetMetAt())
	}
	a := one(acctSLAOpen)
	if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN || a.GetSla().GetBreached() {
		t.Errorf("%s: state %s breached %v, want OPEN", acctSLAOpen, a.GetState(), a.GetSla().GetBreached())
	}
	if due := a.GetSla().GetDueAt().AsTime(); !due.After(now) || due.After(now.Add(30*time.Minute)) {
		t.Errorf("%s: due at %v, want within the next 30 minutes of %v", acctSLAOpen, due, now)
	}
	// The open queue orders the breached MQL before the open one.
	q, err := ro.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Workspace: workspace, OpenQueue: true, Type: routingv1.HandoffType_HANDOFF_TYPE_MQL})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range q.GetAssignments() {
		order = append(order, a.GetAccountId())
	}
	if !slices.Equal(order, []string{acctSLABreach, acctSLAOpen}) {
		t.Errorf("MQL open queue = %v, want [%s %s]", order, acctSLABreach, acctSLAOpen)
	}
}

// skipKnown skips a failing case of a known bug, unless CAIRN_RUN_KNOWN=1
// asks to run it (to check a fix).
func skipKnown(t *testing.T, bug string) {
	t.Helper()
	if os.Getenv("CAIRN_RUN_KNOWN") != "1" {
		t.Skip("known: " + bug)
	}
	t.Log("known bug, run by CAIRN_RUN_KNOWN=1: " + bug)
}

// lateDiff is one documented difference between the ordered and the
// shuffled workspace (docs/reliability.md, "Late events: what differs").
type lateDiff struct {
	// keys are fact keys ("<fact>/<account>"); a key ending in "/" covers
	// that fact of every account.
	keys []string
	why  string
	// known, when set, names the bug: the subtest of the same name asserts
	// what should hold (check, default: the keys are equal) and is skipped
	// with it.
	known string
	check func(t *testing.T, want, got snapshot)
	name  string
}

// lateDiffs lists every documented difference; every other fact of every
// account must be equal between the two workspaces.
var lateDiffs = []lateDiff{
	{
		name: "StageHistory",
		keys: []string{"stages.history/"},
		why: "a journey's transitions are evaluated in arrival order and dated at the triggering event's time: " +
			"an account is placed by the first behavioural event to arrive, and churn/win-back transitions are " +
			"recorded only when the status changes in arrival order (a churn that arrives after the win-back records neither)",
	},
	{
		name: "StageDependsOnArrivalOrder",
		keys: []string{"stages.stage/acct-000", "stages.signals/acct-000", "health.stage/acct-000"},
		why: "acct-000 is in expansion when its events arrive in order, in onboarding when shuffled: first placed by a " +
			"late-arriving event in onboarding (a stage with entry criteria), it never catches up (rule 3 only moves " +
			"accounts out of stages without entry criteria) and onboarding's exit (activated) never holds",
		known: "stages: the stage depends on the arrival order of the same events: an account placed in a stage with entry " +
			"criteria by a late-arriving event does not catch up to the furthest stage its evidence supports " +
			"(acct-000: onboarding shuffled, expansion in order)",
	},
	{
		name: "BandDropOrder",
		keys: []string{"health.signals/jt-sales"},
		why: "band_drop compares the band with the account's earlier evaluations, which are the arrival-ordered " +
			"prefixes of its events: in time order jt-sales's band got worse at some point and the signal is open; " +
			"shuffled, its first evaluation already saw most events",
	},
	{
		name: "RoutingSalesTouches",
		keys: []string{"routing.assignments/jt-sales"},
		why: "shuffled, jt-sales has no RISK handoff, since band_drop is not open (BandDropOrder). Its MQL is met on " +
			"time either way: the crm.contacted (MQL + 10 min) that arrives after the 30-minute breach fired withdraws " +
			"the breach, as the contact was made in time (sla.Meet). The contact does not touch the SQL created two " +
			"days after it (routing.TouchSkew)",
		check: func(t *testing.T, _, got snapshot) {
			line := got["routing.assignments/jt-sales"]
			if strings.Contains(line, "HANDOFF_TYPE_SQL ASSIGNMENT_STATE_TOUCHED") {
				t.Errorf("jt-sales's SQL was touched by a contact from before it existed: %s", line)
			}
			if !strings.Contains(line, "HANDOFF_TYPE_MQL ASSIGNMENT_STATE_TOUCHED owner=sam close=\"\" breached=false met=true") {
				t.Errorf("jt-sales's MQL, contacted in time, is not met on time: %s", line)
			}
		},
	},
	{
		name: "RoutingChurnAfterWinBack",
		keys: []string{"routing.assignments/jt-winback"},
		why: "shuffled, jt-winback's billing.churned (-30d) arrives after its win-back (-6d): the work opened before " +
			"the churn is still closed as churned (the SQL), but there is one closed-won kickoff instead of two (in " +
			"order the first purchase's is closed at the churn and the win-back opens another; shuffled, the first " +
			"purchase's closed-won arrives while routing holds the account churned and is skipped). The MQL, whose " +
			"contact arrived before it, is met on time either way (routing credits touches recorded before a handoff)",
		check: func(t *testing.T, want, got snapshot) {
			line := got["routing.assignments/jt-winback"]
			const closed = `HANDOFF_TYPE_SQL ASSIGNMENT_STATE_CLOSED owner=olivia close="churned"`
			if !strings.Contains(line, closed) {
				t.Errorf("jt-winback's pre-churn SQL is not closed churned: %s", line)
			}
			if !strings.Contains(line, `HANDOFF_TYPE_MQL ASSIGNMENT_STATE_TOUCHED owner=sam close="" breached=false met=true`) {
				t.Errorf("jt-winback's MQL, contacted in time, is not met on time: %s", line)
			}
		},
	},
	{
		name: "RoutingChurnedHandoffs",
		keys: []string{"routing.assignments/jt-churn"},
		why: "shuffled, jt-churn's crm.sql_accepted arrives after billing.churned, so routing skips it as churned and " +
			"no SQL exists; its MQL, whose contact arrived before it, is met on time either way; a RISK " +
			"handoff may open from a health signal routing reads before the churn (health and ingestion logs are read " +
			"independently). Either way nothing is pending",
	},
}

// lateDiffOf returns the documented difference covering key.
func lateDiffOf(key string) (lateDiff, bool) {
	for _, d := range lateDiffs {
		for _, k := range d.keys {
			if k == key || (strings.HasSuffix(k, "/") && strings.HasPrefix(key, k)) {
				return d, true
			}
		}
	}
	return lateDiff{}, false
}

// checkLateEvents compares every fact of every account between the two
// workspaces: equal, or a documented difference; each known bug among the
// differences is a skipped failing case.
func checkLateEvents(t *testing.T, want, got snapshot) {
	for _, d := range want.diff(got, 1000, all) {
		key := d[:strings.IndexByte(d, ':')]
		if ld, ok := lateDiffOf(key); ok {
			t.Logf("documented difference %s: %s", ld.name, d)
			continue
		}
		t.Errorf("ordered vs shuffled differ: %s", d)
	}
	for _, ld := range lateDiffs {
		if ld.known == "" && ld.check == nil {
			continue
		}
		t.Run(ld.name, func(t *testing.T) {
			if ld.known != "" {
				skipKnown(t, ld.known)
			}
			if ld.check != nil {
				ld.check(t, want, got)
				return
			}
			for _, k := range ld.keys {
				if want[k] != got[k] {
					t.Errorf("%s: in order %q, shuffled %q", k, want[k], got[k])
				}
			}
		})
	}
}
