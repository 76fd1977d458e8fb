package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
)

// ingest applies events to the routing service as its ingestion consumer
// does, one transaction per event.
func (h *harness) ingest(evs ...*ingestionv1.Event) {
	h.t.Helper()
	for i, e := range evs {
		e.Workspace = "ws"
		if e.MessageId == "" {
			e.MessageId = fmt.Sprintf("%s-%d", e.GetAccountId(), i)
		}
		rec := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}}
		if err := h.db.Update(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{rec}) }); err != nil {
			h.t.Fatalf("apply event: %v", err)
		}
	}
}

func track(account, user, name string, at time.Time) *ingestionv1.Event {
	return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, AccountId: account, UserId: user, Event: name, Timestamp: timestamppb.New(at)}
}

// TestGetAccountFit checks the fit of a trial that qualified as a PQL, of a
// prospect that did not, the status codes, and a workspace without PQL
// rules.
func TestGetAccountFit(t *testing.T) {
	h := newHarness(t, ny(16, 12, 0))
	h.setup(nil)
	admin := ctxWith(adminKey)
	if _, err := h.client.UpsertOwner(admin, &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{
		OwnerId: "alice", Name: "Alice Schmidt", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", Capacity: 100,
	}}); err != nil {
		t.Fatal(err)
	}
	cfg := &routingv1.Config{
		FallbackPoolId: "sdr",
		Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
		PqlRules: []*routingv1.PqlRule{
			{Name: "team-trial", Condition: `status == "trial" && active_users("14d") >= 3 && features_used("14d") >= 2`},
			{Name: "trial-integration", Condition: `status == "trial" && integrations() >= 1`},
		},
	}
	applied, err := h.client.ApplyConfig(admin, &routingv1.ApplyConfigRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	traits, _ := structpb.NewStruct(map[string]any{"name": "Acme", "plan": "team", "seats": 5})
	h.ingest(
		&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, AccountId: "acme", GroupId: "acme", UserId: "u1", Traits: traits, Timestamp: timestamppb.New(ny(16, 9, 0))},
		track("acme", "u1", "trial_started", ny(16, 9, 5)),
		track("acme", "u1", "report_created", ny(16, 9, 10)),
		track("acme", "u2", "dashboard_shared", ny(16, 9, 15)),
		track("acme", "u3", "report_created", ny(16, 9, 20)), // the third active user: team-trial holds
		track("lone", "v1", "content_viewed", ny(16, 9, 30)),
	)

	read := ctxWith(readKey)
	resp, err := h.client.GetAccountFit(read, &routingv1.GetAccountFitRequest{AccountId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	fit := resp.GetFit()
	if got := fit.GetLifecycle().GetStatus(); got != commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL {
		t.Errorf("status %v, want trial", got)
	}
	if got, want := fit.GetAsOf().AsTime(), ny(16, 9, 20); !got.Equal(want) {
		t.Errorf("as of %v, want the latest event's time %v", got, want)
	}
	if fit.GetConfigVersion() != applied.GetConfig().GetVersion() {
		t.Errorf("config version %d, want %d", fit.GetConfigVersion(), applied.GetConfig().GetVersion())
	}
	in := fit.GetInputs()
	p := in.GetProduct()
	if in.GetStatus() != "trial" || p.GetActiveUsers_14D() != 3 || p.GetFeaturesUsed_14D() != 2 || p.GetKnownUsers() != 3 ||
		strings.Join(p.GetFeatures_30D(), ",") != "report_created,dashboard_shared" || in.GetAccount()["plan"] != "team" || in.GetAccount()["seats"] != "5" {
		t.Errorf("inputs %v", in)
	}
	if evs := p.GetEvents(); len(evs) == 0 || evs[0].GetName() != "report_created" || evs[0].GetCount_7D() != 2 {
		t.Errorf("events %v, want report_created (twice) first, the latest", evs)
	}
	type rule struct {
		name      string
		holds     bool
		qualified bool
		criteria  string
	}
	var rules []rule
	for _, r := range fit.GetRules() {
		var crit []string
		for _, c := range r.GetCriteria() {
			mark := "✗"
			if c.GetMet() {
				mark = "✓"
			}
			crit = append(crit, mark+" "+c.GetExpr())
		}
		rules = append(rules, rule{r.GetName(), r.GetHolds(), r.GetQualified(), strings.Join(crit, "; ")})
	}
	want := []rule{
		{"team-trial", true, true, `✓ status == "trial"; ✓ active_users("14d") >= 3; ✓ features_used("14d") >= 2`},
		{"trial-integration", false, false, `✓ status == "trial"; ✗ integrations() >= 1`},
	}
	if len(rules) != len(want) {
		t.Fatalf("rules %+v, want %+v", rules, want)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d: %+v, want %+v", i, rules[i], want[i])
		}
	}
	pql := fit.GetOpenPqlHandoff()
	if pql.GetType() != routingv1.HandoffType_HANDOFF_TYPE_PQL || pql.GetOwnerId() != "alice" || fit.GetOpenPqlOwnerName() != "Alice Schmidt" ||
		!pql.GetCreatedAt().AsTime().Equal(ny(16, 9, 20)) {
		t.Errorf("open PQL handoff %v owned by %q, want alice's, created at the third user's event", pql, fit.GetOpenPqlOwnerName())
	}

	resp, err = h.client.GetAccountFit(read, &routingv1.GetAccountFitRequest{AccountId: "lone"})
	if err != nil {
		t.Fatal(err)
	}
	fit = resp.GetFit()
	if fit.GetLifecycle().GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT || fit.GetOpenPqlHandoff() != nil ||
		len(fit.GetRules()) != 2 || fit.GetRules()[0].GetHolds() || fit.GetRules()[0].GetCriteria()[0].GetMet() {
		t.Errorf("prospect's fit %v, want a prospect that fits no rule", fit)
	}

	codeTests := []struct {
		name  string
		token string
		req   *routingv1.GetAccountFitRequest
		code  codes.Code
		msg   string
	}{
		{"account id required", readKey, &routingv1.GetAccountFitRequest{}, codes.InvalidArgument, "account_id"},
		{"account id too long", readKey, &routingv1.GetAccountFitRequest{AccountId: strings.Repeat("a", 201)}, codes.InvalidArgument, "account_id"},
		{"unknown account", readKey, &routingv1.GetAccountFitRequest{AccountId: "nobody"}, codes.NotFound, "nobody"},
		{"another workspace's key sees nothing", otherKey, &routingv1.GetAccountFitRequest{AccountId: "acme"}, codes.NotFound, ""},
		{"another workspace is denied", otherKey, &routingv1.GetAccountFitRequest{Workspace: "ws", AccountId: "acme"}, codes.PermissionDenied, ""},
		{"a write key cannot read", writeKey, &routingv1.GetAccountFitRequest{AccountId: "acme"}, codes.PermissionDenied, ""},
	}
	for _, tt := range codeTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.GetAccountFit(ctxWith(tt.token), tt.req)
			if got := status.Code(err); got != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("err %v, want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}

	// Without PQL rules the fit lists none; the inputs are still there.
	cfg.PqlRules = nil
	if _, err := h.client.ApplyConfig(admin, &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	resp, err = h.client.GetAccountFit(read, &routingv1.GetAccountFitRequest{AccountId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFit().GetRules()) != 0 || resp.GetFit().GetInputs().GetStatus() != "trial" {
		t.Errorf("fit without PQL rules %v", resp.GetFit())
	}
}
