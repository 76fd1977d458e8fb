package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// churnJourney has a first stage with an entry criterion, so that accounts
// can be known but not placed, and a drop-off that opens on entering the
// second stage, so that churn has a signal to close.
const churnJourney = `id: life
stages:
  - id: trial
    entry:
      - name: signed_up
        expr: has_event("signed_up")
    exit:
      - name: paid
        expr: has_event("billing.subscription_started")
  - id: paying
    entry:
      - name: paid
        expr: has_event("billing.subscription_started")
    dropoff:
      - name: no_usage
        expr: '!has_event("used")'
`

// accountWant is an account's expected state through GetAccountJourney.
type accountWant struct {
	stage  string
	status commonv1.AccountStatus
	open   []string // open signal reasons
}

// funnelWant is the expected funnel: per stage "current/entered/direct/
// churned", then the account counts.
type funnelWant struct {
	rows                                []string
	accounts, churned, notPlaced, total int64
	reasons                             string
}

const (
	prospect = commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT
	customer = commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER
	churned  = commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED
	wonBack  = commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK
)

// TestChurnIsTerminalUntilWinBack runs one workspace through churn and
// win-back over the gRPC API with a manual clock, checking after each step
// every account's stage and status, the funnel's counts (which must add up:
// the stages' current + churned + not placed = every account), the default
// and status-filtered account lists, and at the end what was published.
func TestChurnIsTerminalUntilWinBack(t *testing.T) {
	r := newRig(t)
	admin, actx := r.client("admin")
	c, ctx := r.client("reader")
	if _, err := admin.ApplyJourney(actx, &stagesv1.ApplyJourneyRequest{Yaml: churnJourney}); err != nil {
		t.Fatal(err)
	}
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	steps := []struct {
		name     string
		at       int
		events   []*ingestionv1.Event
		accounts map[string]accountWant
		funnel   funnelWant
		live     []string // ListAccounts with no status filter
		churned  []string // ListAccounts with status CHURNED
		// closed lists accounts whose signals are all closed, with
		// closed_reason "churned".
		closed []string
	}{
		{
			name: "placed, mid-journey, not placed, churned before placed", at: 0,
			events: []*ingestionv1.Event{
				event("a1", "u1", "signed_up", day(0), nil),
				event("a2", "u2", "billing.subscription_started", day(0), nil), // first seen paying
				event("a3", "u3", "visited", day(0), nil),                      // no entry criterion holds
				event("a4", "u4", "billing.churned", day(0), nil),              // churn history imported
			},
			accounts: map[string]accountWant{
				"a1": {stage: "trial", status: prospect},
				"a2": {stage: "paying", status: customer, open: []string{"paying.no_usage"}},
				"a3": {status: prospect},
				"a4": {status: churned},
			},
			funnel: funnelWant{rows: []string{"trial 1/1/0/0", "paying 1/1/1/0"}, accounts: 3, churned: 1, notPlaced: 1, total: 4, reasons: "signed_up:1"},
			live:   []string{"a1", "a2"}, churned: []string{"a4"},
		},
		{
			name: "a1 becomes a customer", at: 1,
			events:   []*ingestionv1.Event{event("a1", "u1", "billing.subscription_started", day(1), nil)},
			accounts: map[string]accountWant{"a1": {stage: "paying", status: customer, open: []string{"paying.no_usage"}}},
			funnel:   funnelWant{rows: []string{"trial 0/1/0/0", "paying 2/2/1/0"}, accounts: 3, churned: 1, notPlaced: 1, total: 4, reasons: "signed_up:1"},
			live:     []string{"a1", "a2"}, churned: []string{"a4"},
		},
		{
			name: "a1 churns: leaves its stage and the live counts, its signal closes", at: 2,
			events:   []*ingestionv1.Event{event("a1", "u1", "billing.churned", day(2), nil)},
			accounts: map[string]accountWant{"a1": {status: churned}},
			funnel:   funnelWant{rows: []string{"trial 0/1/0/0", "paying 1/2/1/1"}, accounts: 2, churned: 2, notPlaced: 1, total: 4, reasons: "signed_up:1"},
			live:     []string{"a2"}, churned: []string{"a1", "a4"}, closed: []string{"a1"},
		},
		{
			name: "a churned account opens nothing on later events", at: 3,
			events: []*ingestionv1.Event{
				event("a1", "u1", "signed_up", day(3), nil),
				event("a1", "u1", "login", day(3), nil),
				event("a4", "u4", "signed_up", day(3), nil),
			},
			accounts: map[string]accountWant{"a1": {status: churned}, "a4": {status: churned}},
			funnel:   funnelWant{rows: []string{"trial 0/1/0/0", "paying 1/2/1/1"}, accounts: 2, churned: 2, notPlaced: 1, total: 4, reasons: "signed_up:1"},
			live:     []string{"a2"}, churned: []string{"a1", "a4"},
		},
		{
			name: "a1 is won back and placed again where the definition places it", at: 5,
			events:   []*ingestionv1.Event{event("a1", "u1", "billing.renewed", day(5), nil)},
			accounts: map[string]accountWant{"a1": {stage: "paying", status: wonBack, open: []string{"paying.no_usage"}}},
			funnel:   funnelWant{rows: []string{"trial 0/1/0/0", "paying 2/3/2/1"}, accounts: 3, churned: 1, notPlaced: 1, total: 4, reasons: "signed_up:1"},
			live:     []string{"a1", "a2"}, churned: []string{"a4"},
		},
	}
	for _, st := range steps {
		r.clock.Set(day(st.at).Add(time.Hour))
		r.send(st.events...)
		for acct, want := range st.accounts {
			j, err := c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: acct, JourneyId: "life"})
			if err != nil {
				t.Fatalf("%s: %s: %v", st.name, acct, err)
			}
			aj := j.GetJourney()
			var open []string
			for _, s := range aj.GetOpenSignals() {
				open = append(open, s.GetReason())
			}
			if aj.GetStage() != want.stage || aj.GetLifecycle().GetStatus() != want.status || !slices.Equal(open, want.open) {
				t.Errorf("%s: %s = stage %q status %v open %v, want %q %v %v", st.name, acct, aj.GetStage(), aj.GetLifecycle().GetStatus(), open, want.stage, want.status, want.open)
			}
			if !aj.GetAsOf().AsTime().Equal(r.clock.Now()) {
				t.Errorf("%s: %s as_of = %v, want the clock's %v", st.name, acct, aj.GetAsOf().AsTime(), r.clock.Now())
			}
		}
		for _, acct := range st.closed {
			sigs, err := c.ListSignals(ctx, &stagesv1.ListSignalsRequest{AccountId: acct})
			if err != nil || len(sigs.GetSignals()) == 0 {
				t.Fatalf("%s: %s signals = %v, %v", st.name, acct, sigs, err)
			}
			for _, sg := range sigs.GetSignals() {
				if sg.GetState() != commonv1.SignalState_SIGNAL_STATE_CLOSED || sg.GetAttributes()["closed_reason"] != "churned" || sg.GetClosedAt() == nil {
					t.Errorf("%s: %s signal = %v, want closed with closed_reason churned", st.name, acct, sg)
				}
			}
		}
		f, err := c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{JourneyId: "life"})
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		var current int64
		for _, row := range f.GetStages() {
			rows = append(rows, fmt.Sprintf("%s %d/%d/%d/%d", row.GetStage(), row.GetCurrent(), row.GetEntered(), row.GetEnteredDirectly(), row.GetChurned()))
			current += row.GetCurrent()
		}
		var reasons []string
		for _, nr := range f.GetNotPlacedReasons() {
			reasons = append(reasons, fmt.Sprintf("%s:%d", nr.GetReason(), nr.GetAccounts()))
		}
		got := funnelWant{rows: rows, accounts: f.GetAccounts(), churned: f.GetChurned(), notPlaced: f.GetNotPlaced(), total: f.GetTotalAccounts(), reasons: strings.Join(reasons, ",")}
		if fmt.Sprint(got) != fmt.Sprint(st.funnel) {
			t.Errorf("%s: funnel = %+v, want %+v", st.name, got, st.funnel)
		}
		if current+f.GetChurned()+f.GetNotPlaced() != f.GetTotalAccounts() || f.GetAccounts() != f.GetTotalAccounts()-f.GetChurned() {
			t.Errorf("%s: funnel does not add up: current %d + churned %d + not placed %d vs total %d, accounts %d",
				st.name, current, f.GetChurned(), f.GetNotPlaced(), f.GetTotalAccounts(), f.GetAccounts())
		}
		for _, lc := range []struct {
			status []commonv1.AccountStatus
			want   []string
		}{{nil, st.live}, {[]commonv1.AccountStatus{churned}, st.churned}} {
			list, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{JourneyId: "life", Status: lc.status})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range list.GetAccounts() {
				ids = append(ids, a.GetAccountId())
				if len(lc.status) > 0 && a.GetStatus() != churned {
					t.Errorf("%s: listed as churned: %v", st.name, a)
				}
			}
			if !slices.Equal(ids, lc.want) {
				t.Errorf("%s: list accounts with status %v = %v, want %v", st.name, lc.status, ids, lc.want)
			}
		}
	}

	// What downstream services read: a churn is a transition to no stage
	// (cause churn), a win-back a placement (cause win_back); nothing is
	// published for a1 while it is churned, nor for a4.
	want := map[string][]string{
		"a1": {">trial event", "trial>paying event", "+paying.no_usage", "-paying.no_usage", "paying> churn", ">paying win_back", "+paying.no_usage"},
		"a2": {">paying event", "+paying.no_usage"},
	}
	got := r.published(t)
	for _, acct := range []string{"a1", "a2", "a3", "a4"} {
		if !slices.Equal(got[acct], want[acct]) {
			t.Errorf("%s published %v, want %v", acct, got[acct], want[acct])
		}
	}
}

func TestListAccountsStatusFilter(t *testing.T) {
	r := newRig(t)
	c, ctx := r.client("reader")
	r.send(
		event("p", "u1", "content_viewed", t0, nil),
		event("cu", "u2", "contract_signed", t0, nil),
		event("cu", "u2", "billing.subscription_started", t0, nil),
		event("ch", "u3", "billing.subscription_started", t0, nil),
		event("ch", "u3", "billing.churned", t0.Add(time.Hour), nil),
	)
	for _, tc := range []struct {
		name   string
		status []commonv1.AccountStatus
		want   string
		code   codes.Code
	}{
		{"default: live accounts", nil, "p cu", codes.OK},
		{"prospects", []commonv1.AccountStatus{prospect}, "p", codes.OK},
		{"customers", []commonv1.AccountStatus{customer}, "cu", codes.OK},
		{"churned", []commonv1.AccountStatus{churned}, "ch", codes.OK},
		{"several", []commonv1.AccountStatus{churned, customer}, "ch cu", codes.OK},
		{"won back: none", []commonv1.AccountStatus{wonBack}, "", codes.OK},
		{"unspecified", []commonv1.AccountStatus{commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED}, "", codes.InvalidArgument},
		{"unknown", []commonv1.AccountStatus{customer, 99}, "", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Status: tc.status})
			if tc.code != codes.OK {
				wantCode(t, err, tc.code, "status")
				if fields := violations(err); fmt.Sprint(fields) != "[status]" {
					t.Errorf("field violations = %v, want [status]", fields)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range list.GetAccounts() {
				ids = append(ids, a.GetAccountId())
				if a.GetStatus() == commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
					t.Errorf("%s has no status", a.GetAccountId())
				}
			}
			if got := strings.Join(ids, " "); got != tc.want {
				t.Errorf("accounts = %q, want %q", got, tc.want)
			}
		})
	}
}

// published returns each account's records on the stages log: "from>to
// cause" for transitions, "+reason"/"-reason" for signals.
func (r *rig) published(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for p := uint32(0); p < parts; p++ {
		recs, err := r.out.Read(p, 1, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			var lr stagesv1.LogRecord
			if err := proto.Unmarshal(rec.Data, &lr); err != nil {
				t.Fatal(err)
			}
			switch k := lr.GetKind().(type) {
			case *stagesv1.LogRecord_Transition:
				tr := k.Transition
				out[tr.GetAccountId()] = append(out[tr.GetAccountId()], tr.GetFromStage()+">"+tr.GetToStage()+" "+tr.GetCause())
			case *stagesv1.LogRecord_Signal:
				sign := "+"
				if k.Signal.GetState() == commonv1.SignalState_SIGNAL_STATE_CLOSED {
					sign = "-"
				}
				out[k.Signal.GetAccountId()] = append(out[k.Signal.GetAccountId()], sign+k.Signal.GetReason())
			}
		}
	}
	return out
}
