package app

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
)

// plainMQL is an 8-business-hour MQL policy that neither reassigns nor
// notifies: a breach leaves the assignment BREACHED with its owner.
var plainMQL = &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(8 * time.Hour)}

func (h *harness) touch(id string, at time.Time) *routingv1.Assignment {
	h.t.Helper()
	r, err := h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: id, TouchType: "contacted", At: timestamppb.New(at)})
	if err != nil {
		h.t.Fatalf("touch %s: %v", id, err)
	}
	return r.GetAssignment()
}

// queue reads the whole open queue page by page and returns the ids in
// order, one page per string.
func (h *harness) queue(req *routingv1.ListAssignmentsRequest, size int32) []string {
	h.t.Helper()
	var pages []string
	req.OpenQueue = true
	req.Page = &commonv1.PageRequest{PageSize: size}
	for {
		r, err := h.client.ListAssignments(ctxWith(readKey), req)
		if err != nil {
			h.t.Fatalf("open queue: %v", err)
		}
		var ids []string
		for _, a := range r.GetAssignments() {
			ids = append(ids, a.GetAssignmentId())
		}
		pages = append(pages, strings.Join(ids, ","))
		if r.GetPage().GetNextPageToken() == "" {
			return pages
		}
		req.Page = &commonv1.PageRequest{PageSize: size, PageToken: r.GetPage().GetNextPageToken()}
	}
}

// TestMetLateLeavesTheOpenQueue checks the SLA lifecycle through the API: a
// breached handoff touched later is met late (breached stays set, met_at
// unset, time to first touch recorded), becomes TOUCHED and leaves the
// open queue, the BREACHED list and its owner's load; the open queue holds
// open and untouched breached work by due time, paused work apart.
func TestMetLateLeavesTheOpenQueue(t *testing.T) {
	h := newHarness(t, "", ny(16, 10, 0)) // Monday 10:00
	h.setup(plainMQL)
	a := h.qualify("a@x.com") // alice, due Tue 10:00
	h.clk.Set(ny(16, 11, 0))
	b := h.qualify("b@x.com") // bob, due Tue 11:00
	h.clk.Set(ny(17, 12, 0))
	h.fire()                  // both breach
	c := h.qualify("c@x.com") // alice, due Wed 12:00
	h.clk.Set(ny(17, 12, 30))
	d := h.qualify("d@x.com") // bob, due Wed 12:30
	ids := func(as ...*routingv1.Assignment) string {
		var out []string
		for _, a := range as {
			out = append(out, a.GetAssignmentId())
		}
		return strings.Join(out, ",")
	}
	if got, want := h.queue(&routingv1.ListAssignmentsRequest{}, 3), []string{ids(a, b, c), ids(d)}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("open queue by due %q, want %q", got, want)
	}

	h.clk.Set(ny(17, 13, 0))
	got := h.touch(a.GetAssignmentId(), ny(17, 13, 0))
	if got.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED || !got.GetSla().GetMetLate() || !got.GetSla().GetBreached() ||
		got.GetSla().GetMetAt() != nil || !got.GetSla().GetMetLateAt().AsTime().Equal(ny(17, 13, 0)) {
		t.Fatalf("after a late touch: state %s sla %v", got.GetState(), got.GetSla())
	}
	if d := got.GetTimeToFirstTouch().AsDuration(); d != 27*time.Hour {
		t.Fatalf("time to first touch %s, want 27h", d)
	}
	if ev := strings.Join(slaEvents(t, h.db, a.GetAssignmentId()), " "); ev != "breach[warning_50,warning_80]:alice met_late:alice" {
		t.Fatalf("sla events %q", ev)
	}
	// A second touch changes nothing more.
	if again := h.touch(a.GetAssignmentId(), ny(17, 13, 0)); !again.GetSla().GetMetLateAt().AsTime().Equal(ny(17, 13, 0)) {
		t.Fatalf("second touch moved met_late_at: %v", again.GetSla())
	}

	if _, err := h.client.PauseSla(ctxWith(writeKey), &routingv1.PauseSlaRequest{AssignmentId: c.GetAssignmentId()}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *routingv1.ListAssignmentsRequest
		want string
	}{
		{"late touch and pause leave the queue", &routingv1.ListAssignmentsRequest{}, ids(b, d)},
		{"by owner", &routingv1.ListAssignmentsRequest{OwnerId: "bob"}, ids(b, d)},
		{"alice has nothing left to do", &routingv1.ListAssignmentsRequest{OwnerId: "alice"}, ""},
		{"by account", &routingv1.ListAssignmentsRequest{AccountId: "acct-d@x.com"}, ids(d)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(h.queue(tt.req, 10), "|"); got != tt.want {
				t.Fatalf("open queue %q, want %q", got, tt.want)
			}
		})
	}
	breached := h.list(&routingv1.ListAssignmentsRequest{State: routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED})
	if got := ids(breached...); got != ids(b) {
		t.Fatalf("BREACHED list %q, want only b", got)
	}
	load, err := h.client.ListOwnerLoad(ctxWith(readKey), &routingv1.ListOwnerLoadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var loads []string
	for _, o := range load.GetOwners() {
		loads = append(loads, fmt.Sprintf("%s:%d/%d", o.GetOwnerId(), o.GetOpen(), o.GetBreached()))
	}
	if got := strings.Join(loads, " "); got != "alice:1/0 bob:2/1 maria:0/0" {
		t.Fatalf("load (open/breached) %q", got)
	}
	_, err = h.client.ListAssignments(ctxWith(readKey), &routingv1.ListAssignmentsRequest{OpenQueue: true, State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("open_queue with state: %v, want InvalidArgument", err)
	}
}

// TestDuplicateHandoffsFold checks that a handoff for an account with a
// pending one of the same type returns that one and counts the attempt,
// whether it came through the API or as health signals, and whether the
// pending one has an owner or not; work already done does not block a new
// handoff.
func TestDuplicateHandoffsFold(t *testing.T) {
	t.Run("api, three in one second", func(t *testing.T) {
		h := newHarness(t, "", ny(16, 10, 0))
		h.setup(nil)
		var ids []string
		for i := range 3 {
			r, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RISK, AccountId: "acme", RequestId: fmt.Sprintf("r%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.GetAssignment().GetAssignmentId())
		}
		if ids[0] != ids[1] || ids[1] != ids[2] {
			t.Fatalf("three risk handoffs opened %v", ids)
		}
		a := h.assignment(ids[0])
		if a.GetDuplicatesSuppressed() != 2 || !a.GetLastDuplicateAt().AsTime().Equal(ny(16, 10, 0)) {
			t.Fatalf("duplicates %d at %v", a.GetDuplicatesSuppressed(), a.GetLastDuplicateAt())
		}
		// A retried request returns the same assignment without counting.
		r, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RISK, AccountId: "acme", RequestId: "r1"})
		if err != nil || r.GetAssignment().GetDuplicatesSuppressed() != 2 {
			t.Fatalf("retry: %v %v", r.GetAssignment(), err)
		}
		// Another type, and manual handoffs, are not duplicates.
		ren, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RENEWAL, AccountId: "acme"})
		if err != nil || ren.GetAssignment().GetAssignmentId() == ids[0] {
			t.Fatalf("renewal: %v %v", ren.GetAssignment(), err)
		}
		// Once worked, a later risk opens a new handoff.
		h.touch(ids[0], ny(16, 10, 0))
		h.clk.Set(ny(16, 10, 1))
		r, err = h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RISK, AccountId: "acme"})
		if err != nil || r.GetAssignment().GetAssignmentId() == ids[0] {
			t.Fatalf("risk after the first was touched: %v %v", r.GetAssignment(), err)
		}
	})
	t.Run("unassigned pending handoff", func(t *testing.T) {
		// No owners, pools or config: every handoff waits UNASSIGNED, and
		// three signals in a row must still be one handoff.
		h := newHarness(t, "", ny(16, 10, 0))
		for i := range 3 {
			if _, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RISK, AccountId: "acme", RequestId: fmt.Sprintf("r%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		as := h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})
		if len(as) != 1 || as[0].GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED || as[0].GetDuplicatesSuppressed() != 2 {
			t.Fatalf("assignments %v", as)
		}
	})
	t.Run("health signals, three risk reasons in one second", func(t *testing.T) {
		h := newHarness(t, "", ny(16, 10, 0))
		h.applyExample()
		var recs []*healthv1.LogRecord
		for _, reason := range []string{"usage_drop_30d", "nps_detractor", "champion_left"} {
			recs = append(recs, &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
				Workspace: "ws", AccountId: "acme", SignalId: "acme:" + reason, Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
				Reason: reason, State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(ny(16, 10, 0)),
			}}})
		}
		h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, recs) })
		as := h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})
		if got := summary(as); got != "risk/acme/carl/existing-csm/open" {
			t.Fatalf("assignments %q", got)
		}
		if as[0].GetDuplicatesSuppressed() != 2 {
			t.Fatalf("duplicates %d, want 2", as[0].GetDuplicatesSuppressed())
		}
	})
	t.Run("health signals after a call, as in the demo", func(t *testing.T) {
		// The account has a CSM and an AE, and was called after the risk
		// signals opened: each new risk handoff takes that call as its
		// first touch at once (TOUCHED), which let the next reason in the
		// same second open another one. The call covers them all.
		h := newHarness(t, "", ny(16, 10, 10))
		h.applyExample()
		h.ingest("group", ny(16, 9, 0), &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", AccountId: "acme", Traits: st(t, map[string]any{"csm_id": "cara", "ae_id": "abe"})})
		h.ingest("call", ny(16, 10, 5), &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.contacted", AccountId: "acme"})
		var recs []*healthv1.LogRecord
		for _, reason := range []string{"usage_drop_30d", "nps_detractor", "champion_left"} {
			recs = append(recs, &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
				Workspace: "ws", AccountId: "acme", SignalId: "acme:" + reason, Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
				Reason: reason, State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(ny(16, 10, 0)),
			}}})
		}
		h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, recs) })
		as := h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})
		if got := summary(as); got != "risk/acme/cara/existing-csm/touched risk/acme/abe/account_ae/touched" {
			t.Fatalf("assignments %q", got)
		}
		if as[0].GetDuplicatesSuppressed() != 2 {
			t.Fatalf("duplicates %d, want 2", as[0].GetDuplicatesSuppressed())
		}
		// A risk that opens after the call is new work.
		h.clk.Set(ny(16, 11, 0))
		rec := &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
			Workspace: "ws", AccountId: "acme", SignalId: "acme:seats_down", Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
			Reason: "seats_down", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(ny(16, 11, 0)),
		}}}
		h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, []*healthv1.LogRecord{rec}) })
		if got := summary(h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})); got != "risk/acme/cara/existing-csm/touched risk/acme/abe/account_ae/touched risk/acme/cara/existing-csm/open risk/acme/abe/account_ae/open" {
			t.Fatalf("after a later risk: %q", got)
		}
	})
}

// TestReportOutcomes checks GetReport on a hand-computed set: six
// handoffs created Monday 09:00, due Monday 17:00 (8 business hours).
//
//	m1 alice MQL touched 10:00       on time  1h
//	m2 bob   MQL touched 12:00       on time  3h
//	m3 alice MQL touched Tue 09:00   late    24h
//	m4 bob   MQL never touched       breached
//	s1 alice SQL touched 09:30       on time 30m
//	s2 bob   SQL never touched       breached
func TestReportOutcomes(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(plainMQL)
	cfg := &routingv1.Config{
		FallbackPoolId: "sdr",
		Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
		SlaPolicies: []*routingv1.SlaPolicy{plainMQL,
			{Name: "sql", Type: routingv1.HandoffType_HANDOFF_TYPE_SQL, Within: durationpb.New(8 * time.Hour)}},
	}
	if _, err := h.client.ApplyConfig(ctxWith(adminKey), &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, n := range []string{"m1", "m2", "m3", "m4", "s1", "s2"} {
		typ := routingv1.HandoffType_HANDOFF_TYPE_MQL
		if n[0] == 's' {
			typ = routingv1.HandoffType_HANDOFF_TYPE_SQL
		}
		r, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: typ, Lead: &routingv1.Lead{Email: n + "@x.com", AccountId: n}})
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = r.GetAssignment().GetAssignmentId()
	}
	for _, step := range []struct {
		name string
		at   time.Time
	}{{"s1", ny(16, 9, 30)}, {"m1", ny(16, 10, 0)}, {"m2", ny(16, 12, 0)}, {"", ny(16, 17, 1)}, {"m3", ny(17, 9, 0)}} {
		h.clk.Set(step.at)
		if step.name == "" {
			h.fire()
			continue
		}
		h.touch(ids[step.name], step.at)
	}
	rep, err := h.client.GetReport(ctxWith(readKey), &routingv1.GetReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.GetRows() {
		got[r.GetGroupBy()+"="+r.GetKey()] = fmt.Sprintf("n=%d on_time=%d late=%d untouched=%d met=%d breached=%d attainment=%.3f median=%s p90=%s",
			r.GetAssignments(), r.GetMetOnTime(), r.GetMetLate(), r.GetBreachedUntouched(), r.GetMet(), r.GetBreached(), r.GetAttainment(),
			r.GetMedianSpeedToLead().AsDuration(), r.GetP90SpeedToLead().AsDuration())
	}
	want := map[string]string{
		"type=mql":    "n=4 on_time=2 late=1 untouched=1 met=2 breached=2 attainment=0.500 median=3h0m0s p90=24h0m0s",
		"type=sql":    "n=2 on_time=1 late=0 untouched=1 met=1 breached=1 attainment=0.500 median=30m0s p90=30m0s",
		"owner=alice": "n=3 on_time=2 late=1 untouched=0 met=2 breached=1 attainment=0.667 median=1h0m0s p90=24h0m0s",
		"owner=bob":   "n=3 on_time=1 late=0 untouched=2 met=1 breached=2 attainment=0.333 median=3h0m0s p90=3h0m0s",
		"team=sdr":    "n=6 on_time=3 late=1 untouched=2 met=3 breached=3 attainment=0.500 median=1h0m0s p90=24h0m0s",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s\n want %s", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rows %v", got)
	}
}

// TestChurnClosesAndBlocksHandoffs checks that when an account's status,
// derived from the aggregates routing keeps, becomes churned, its pending
// handoffs close with reason "churned" (work already done stays), nothing
// new is opened for it (API, CRM events, health signals) and a win-back
// opens the way again.
func TestChurnClosesAndBlocksHandoffs(t *testing.T) {
	h := newHarness(t, "", ny(16, 10, 0))
	h.applyExample()
	track := func(id, name string, at time.Time, props map[string]any) {
		h.clk.Set(at)
		h.ingest(id, at, &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: name, AccountId: "acme", Properties: st(t, props)})
	}
	risk := func(reason string, at time.Time) {
		rec := &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
			Workspace: "ws", AccountId: "acme", SignalId: "acme:" + reason, Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
			Reason: reason, State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(at),
		}}}
		h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, []*healthv1.LogRecord{rec}) })
	}
	track("won", "crm.closed_won", ny(16, 10, 0), nil)
	track("mql", "crm.mql", ny(16, 10, 5), map[string]any{"email": "lee@acme.com"})
	risk("usage_drop_30d", ny(16, 10, 10))
	mql := h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL})[0]
	h.clk.Set(ny(16, 10, 20))
	h.touch(mql.GetAssignmentId(), ny(16, 10, 20))
	if got := summary(h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})); got != "closed_won/acme/ian/kickoff/open mql/acme/sam/known-account/touched risk/acme/carl/existing-csm/open" {
		t.Fatalf("before the churn: %q", got)
	}

	track("churn", "billing.churned", ny(16, 11, 0), nil)
	as := h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})
	if got := summary(as); got != "closed_won/acme/ian/kickoff/closed mql/acme/sam/known-account/touched risk/acme/carl/existing-csm/closed" {
		t.Fatalf("after the churn: %q", got)
	}
	for _, a := range as {
		want := CloseReasonChurned
		if a.GetType() == routingv1.HandoffType_HANDOFF_TYPE_MQL {
			want = ""
		}
		if a.GetCloseReason() != want {
			t.Fatalf("%s close reason %q, want %q", rules.TypeName(a.GetType()), a.GetCloseReason(), want)
		}
	}
	if q := h.queue(&routingv1.ListAssignmentsRequest{AccountId: "acme"}, 10); strings.Join(q, "|") != "" {
		t.Fatalf("open queue of a churned account: %v", q)
	}
	if n := h.fire(); n != 0 {
		t.Fatalf("%d timers fired for closed handoffs", n)
	}

	// Nothing new while churned: API, CRM events, health signals.
	_, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RISK, AccountId: "acme"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("risk handoff for a churned account: %v, want FailedPrecondition", err)
	}
	_, err = h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_PQL, Lead: &routingv1.Lead{AccountId: "acme"}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("pql for a churned account: %v, want FailedPrecondition", err)
	}
	track("mql2", "crm.mql", ny(16, 12, 0), map[string]any{"email": "kim@acme.com"})
	risk("nps_detractor", ny(16, 12, 5))
	if n := len(h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})); n != 3 {
		t.Fatalf("%d assignments while churned, want the 3 from before", n)
	}

	// Won back: handoffs open again.
	track("won-back", "crm.closed_won", ny(17, 10, 0), nil)
	r, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RISK, AccountId: "acme"})
	if err != nil {
		t.Fatalf("risk handoff after the win-back: %v", err)
	}
	if r.GetAssignment().GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN {
		t.Fatalf("risk after win-back %v", r.GetAssignment())
	}
	if got := summary(h.list(&routingv1.ListAssignmentsRequest{AccountId: "acme"})); !strings.HasSuffix(got, "closed_won/acme/ian/kickoff/open risk/acme/carl/existing-csm/open") {
		t.Fatalf("after the win-back: %q", got)
	}
	if !errors.Is(&churnedError{account: "x"}, errChurned) {
		t.Fatal("churnedError is not errChurned")
	}
}
