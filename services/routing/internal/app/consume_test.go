package app

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/routing/config"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// applyConfigYAML loads the example routing.yaml (owners, pools, config).
func (h *harness) applyExample() {
	h.t.Helper()
	cfg, owners, pools, err := config.Parse([]byte(exampleYAML))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx := ctxWith(adminKey)
	for _, o := range owners {
		if _, err := h.client.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: o}); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, p := range pools {
		if _, err := h.client.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: p}); err != nil {
			h.t.Fatal(err)
		}
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
		h.t.Fatal(err)
	}
}

const exampleYAML = `
fallback_pool: sdr
owners:
  - {id: sam, team: sdr}
  - {id: sue, team: sdr}
  - {id: cara, team: csm}
  - {id: carl, team: csm}
  - {id: abe, team: ae}
  - {id: ian, team: implementation}
pools:
  - {id: sdr, owners: [sam, sue]}
  - {id: cs, owners: [carl]}
  - {id: impl, owners: [ian]}
rules:
  - {name: existing-csm, types: [renewal, risk], action: account_owner, team: csm, pool: cs}
  - {name: kickoff, types: [closed_won], action: pool, pool: impl}
  - {name: known-account, types: [mql, pql, sql], action: account_owner, team: sdr, pool: sdr}
pql_rules:
  - {name: activated-trial, when: 'stage == "trial" && "activation_reached" in signals'}
  - {name: healthy, when: 'health_band == "healthy"'}
`

func st(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) apply(fn func(tx *pstore.Tx) error) {
	h.t.Helper()
	if err := h.db.Update(fn); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) list(f *routingv1.ListAssignmentsRequest) []*routingv1.Assignment {
	h.t.Helper()
	r, err := h.client.ListAssignments(ctxWith(readKey), f)
	if err != nil {
		h.t.Fatal(err)
	}
	return r.GetAssignments()
}

func summary(as []*routingv1.Assignment) string {
	var out []string
	for _, a := range as {
		out = append(out, strings.ToLower(strings.TrimPrefix(a.GetType().String(), "HANDOFF_TYPE_"))+"/"+a.GetAccountId()+"/"+a.GetOwnerId()+"/"+a.GetDecision().GetRule()+"/"+strings.ToLower(strings.TrimPrefix(a.GetState().String(), "ASSIGNMENT_STATE_")))
	}
	return strings.Join(out, " ")
}

func TestApplyIngestion(t *testing.T) {
	ts := timestamppb.New(ny(16, 10, 0))
	ev := func(id string, e *ingestionv1.Event) *ingestionv1.LogRecord {
		e.Workspace, e.MessageId, e.Timestamp = "ws", id, ts
		return &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}}
	}
	tests := []struct {
		name string
		recs func(t *testing.T) []*ingestionv1.LogRecord
		want string
	}{
		{
			name: "mql from crm event with identify email then contacted",
			recs: func(t *testing.T) []*ingestionv1.LogRecord {
				return []*ingestionv1.LogRecord{
					ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u1", Traits: st(t, map[string]any{"email": "pat@acme.com", "territory": "emea"})}),
					ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", UserId: "u1", AccountId: "acme"}),
					ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", UserId: "u1", AccountId: "acme"}),
					ev("m3", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.contacted", UserId: "u1"}),
				}
			},
			want: "mql/acme/sam/known-account/touched",
		},
		{
			name: "second mql of a known account goes to its sdr",
			recs: func(t *testing.T) []*ingestionv1.LogRecord {
				return []*ingestionv1.LogRecord{
					ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "acme", Properties: st(t, map[string]any{"email": "a@acme.com"})}),
					ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "", Properties: st(t, map[string]any{"email": "b@acme.com"})}),
				}
			},
			want: "mql/acme/sam/known-account/open mql//sam/known-account/open",
		},
		{
			name: "sql honours the crm owner and closed lost disqualifies",
			recs: func(t *testing.T) []*ingestionv1.LogRecord {
				return []*ingestionv1.LogRecord{
					ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.sql_accepted", AccountId: "acme", Properties: st(t, map[string]any{"owner_id": "abe", "email": "x@acme.com"})}),
					ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.closed_lost", AccountId: "acme"}),
				}
			},
			want: "sql/acme/abe/crm_owner/closed",
		},
		{
			name: "closed won goes to implementation",
			recs: func(t *testing.T) []*ingestionv1.LogRecord {
				return []*ingestionv1.LogRecord{
					ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.closed_won", AccountId: "acme"}),
				}
			},
			want: "closed_won/acme/ian/kickoff/open",
		},
		{
			name: "tombstone forgets the account owner",
			recs: func(t *testing.T) []*ingestionv1.LogRecord {
				return []*ingestionv1.LogRecord{
					ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", Traits: st(t, map[string]any{"sdr_id": "sue"})}),
					{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "ws", AccountId: "acme"}}},
					ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "acme", Properties: st(t, map[string]any{"email": "a@acme.com"})}),
				}
			},
			want: "mql/acme/sam/known-account/open",
		},
		{
			name: "group owner trait routes to that sdr",
			recs: func(t *testing.T) []*ingestionv1.LogRecord {
				return []*ingestionv1.LogRecord{
					ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", Traits: st(t, map[string]any{"sdr_id": "sue"})}),
					ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "acme"}),
				}
			},
			want: "mql/acme/sue/known-account/open",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 10, 0))
			h.applyExample()
			for _, r := range tt.recs(t) {
				h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{r}) })
			}
			if got := summary(h.list(&routingv1.ListAssignmentsRequest{})); got != tt.want {
				t.Fatalf("assignments %q, want %q", got, tt.want)
			}
		})
	}
}

func TestApplyStagesAndHealth(t *testing.T) {
	h := newHarness(t, "", ny(16, 10, 0))
	h.applyExample()
	stage := func(from, to string) *stagesv1.LogRecord {
		return &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{Workspace: "ws", AccountId: "acme", FromStage: from, ToStage: to}}}
	}
	signal := func(kind commonv1.SignalKind, reason string, state commonv1.SignalState) *commonv1.Signal {
		return &commonv1.Signal{Workspace: "ws", AccountId: "acme", SignalId: "acme:" + reason, Kind: kind, Reason: reason, State: state, OpenedAt: timestamppb.New(ny(16, 10, 0))}
	}
	activation := func(state commonv1.SignalState) *stagesv1.LogRecord {
		return &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Signal{Signal: signal(commonv1.SignalKind_SIGNAL_KIND_STUCK, "activation_reached", state)}}
	}
	steps := []struct {
		name   string
		stages []*stagesv1.LogRecord
		health []*healthv1.LogRecord
		want   string
	}{
		{"trial without activation", []*stagesv1.LogRecord{stage("", "trial")}, nil, ""},
		{"activation fires a pql", []*stagesv1.LogRecord{activation(commonv1.SignalState_SIGNAL_STATE_OPEN)}, nil, "pql/acme/sam/known-account/open"},
		{"still holding does not refire", []*stagesv1.LogRecord{stage("trial", "trial")}, nil, "pql/acme/sam/known-account/open"},
		// A PQL rule that holds again while the account's PQL is still open
		// is folded into it (duplicates_suppressed), not routed twice.
		{"requalification while the pql is open adds nothing", []*stagesv1.LogRecord{activation(commonv1.SignalState_SIGNAL_STATE_CLOSED), activation(commonv1.SignalState_SIGNAL_STATE_OPEN)}, nil,
			"pql/acme/sam/known-account/open"},
		{"group trait names the csm and ae", nil, nil, "pql/acme/sam/known-account/open"},
		{"risk goes to csm and ae", nil, []*healthv1.LogRecord{{Kind: &healthv1.LogRecord_Signal{Signal: signal(commonv1.SignalKind_SIGNAL_KIND_RISK, "usage_drop_30d", commonv1.SignalState_SIGNAL_STATE_OPEN)}}},
			"pql/acme/sam/known-account/open risk/acme/cara/existing-csm/open risk/acme/abe/account_ae/open"},
		{"replayed risk signal is idempotent", nil, []*healthv1.LogRecord{{Kind: &healthv1.LogRecord_Signal{Signal: signal(commonv1.SignalKind_SIGNAL_KIND_RISK, "usage_drop_30d", commonv1.SignalState_SIGNAL_STATE_OPEN)}}},
			"pql/acme/sam/known-account/open risk/acme/cara/existing-csm/open risk/acme/abe/account_ae/open"},
		{"healthy band fires the other pql rule into the open one", nil, []*healthv1.LogRecord{{Kind: &healthv1.LogRecord_ScoreChange{ScoreChange: &healthv1.ScoreChange{Workspace: "ws", AccountId: "acme", Score: 90, Band: healthv1.Band_BAND_HEALTHY}}}},
			"pql/acme/sam/known-account/open risk/acme/cara/existing-csm/open risk/acme/abe/account_ae/open"},
		{"second risk reason while the first is open adds nothing", nil, []*healthv1.LogRecord{{Kind: &healthv1.LogRecord_Signal{Signal: signal(commonv1.SignalKind_SIGNAL_KIND_RISK, "nps_detractor", commonv1.SignalState_SIGNAL_STATE_OPEN)}}},
			"pql/acme/sam/known-account/open risk/acme/cara/existing-csm/open risk/acme/abe/account_ae/open"},
		{"renewal window goes to the csm", nil, []*healthv1.LogRecord{{Kind: &healthv1.LogRecord_Signal{Signal: signal(commonv1.SignalKind_SIGNAL_KIND_RENEWAL, "renewal_window_90", commonv1.SignalState_SIGNAL_STATE_OPEN)}}},
			"pql/acme/sam/known-account/open risk/acme/cara/existing-csm/open risk/acme/abe/account_ae/open renewal/acme/cara/existing-csm/open"},
	}
	for _, s := range steps {
		if s.name == "group trait names the csm and ae" {
			group := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", Traits: st(t, map[string]any{"csm_id": "cara", "ae_id": "abe"}),
			}}}
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{group}) })
		}
		if len(s.stages) > 0 {
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyStages(tx, 0, s.stages) })
		}
		if len(s.health) > 0 {
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, s.health) })
		}
		if got := summary(h.list(&routingv1.ListAssignmentsRequest{})); got != s.want {
			t.Fatalf("%s: assignments\n%q\nwant\n%q", s.name, got, s.want)
		}
	}
	// The PQL absorbed the requalification and the other rule; the CSM's
	// risk handoff the second risk reason.
	var dups []string
	for _, a := range h.list(&routingv1.ListAssignmentsRequest{}) {
		dups = append(dups, fmt.Sprintf("%s:%d", rules.TypeName(a.GetType()), a.GetDuplicatesSuppressed()))
	}
	if got, want := strings.Join(dups, " "), "pql:2 risk:1 risk:0 renewal:0"; got != want {
		t.Fatalf("duplicates suppressed %q, want %q", got, want)
	}
}

// TestConsumerEndToEnd runs a real stream.Consumer over a local ingestion
// log: records appended upstream become assignments, and the cursor commits
// with them.
func TestConsumerEndToEnd(t *testing.T) {
	h := newHarness(t, "", ny(16, 10, 0))
	h.applyExample()
	upDB := storetest.Open(t)
	upLog, err := stream.OpenLog(upDB, "ingestion", stream.LogOptions{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: h.db, Partitions: []uint32{0},
		Source: stream.LocalSource(upLog, func(r stream.Record) (*ingestionv1.LogRecord, error) {
			m := &ingestionv1.LogRecord{}
			if err := proto.Unmarshal(r.Data, m); err != nil {
				return nil, err
			}
			m.Offset, m.Partition = r.Offset, r.Partition
			return m, nil
		}),
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  h.svc.ApplyIngestion,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	var last uint64
	for i, name := range []string{"crm.mql", "crm.closed_won"} {
		data, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
			Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: name, MessageId: string(rune('a' + i)), AccountId: "acme",
			Properties: st(t, map[string]any{"email": "lee@acme.com"}),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if last, err = upLog.Append(ctx, 0, data); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := cons.WaitFor(wctx, 0, last); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := summary(h.list(&routingv1.ListAssignmentsRequest{})); got != "mql/acme/sam/known-account/open closed_won/acme/ian/kickoff/open" {
		t.Fatalf("assignments %q", got)
	}
	_ = h.db.View(func(tx *pstore.Tx) error {
		if c, err := stream.ReadCursor(tx, "ingestion", 0); err != nil || c != last {
			t.Errorf("stored cursor %d (%v), want %d", c, err, last)
		}
		return nil
	})
}

// FuzzApplyIngestion applies arbitrary ingestion log records (the consumer's
// outside input) against a small directory and checks that nothing panics;
// errors are allowed (the consumer's transaction then rolls back).
func FuzzApplyIngestion(f *testing.F) {
	seeds := []*ingestionv1.LogRecord{
		{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "a", MessageId: "m"}}},
		{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "a"}}},
		{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.contacted", UserId: "u"}}},
		{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "ws", AccountId: "a"}}},
		{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "activation_reached", UserId: "u", AccountId: "a", Timestamp: timestamppb.New(ny(16, 9, 0))}}},
		{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_PAGE, Name: "home", UserId: "v", AccountId: "a"}}},
		{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "ws", UserId: "u"}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	db := storetest.Open(f)
	svc, err := New(Options{DB: db, Log: txLog{}, Partitions: 4, Clock: clock.NewManual(ny(16, 10, 0))})
	if err != nil {
		f.Fatal(err)
	}
	err = svc.Update("ws", func(tx *store.Tx) error {
		if err := svc.PutOwner(tx, &routingv1.Owner{OwnerId: "o", Team: routingv1.Team_TEAM_SDR}); err != nil {
			return err
		}
		if err := tx.PutPool(&routingv1.Pool{PoolId: "p", OwnerIds: []string{"o"}}); err != nil {
			return err
		}
		// A PQL rule over aggregates makes every product event evaluate it.
		cfg := &routingv1.Config{FallbackPoolId: "p", PqlRules: []*routingv1.PqlRule{{Name: "act",
			Condition: `has_event("activation_reached") && active_users("7d") >= 2 && count("*", "30d") > 1`}}}
		if _, errs := rules.Compile(cfg); len(errs) > 0 {
			return fmt.Errorf("fuzz config: %v", errs)
		}
		return tx.PutConfig(cfg)
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &ingestionv1.LogRecord{}
		if err := proto.Unmarshal(data, r); err != nil {
			return
		}
		_ = db.Update(func(tx *pstore.Tx) error { return svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{r}) })
	})
}

func TestTombstoneScrubsLeads(t *testing.T) {
	h := newHarness(t, "", ny(16, 10, 0))
	h.applyExample()
	ev := func(id string, e *ingestionv1.Event) *ingestionv1.LogRecord {
		e.Workspace, e.MessageId = "ws", id
		return &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}}
	}
	recs := []*ingestionv1.LogRecord{
		ev("m1", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u1", Traits: st(t, map[string]any{"email": "pat@acme.com", "name": "Pat"})}),
		ev("m2", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", UserId: "u1", AccountId: "acme"}),
		ev("m3", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "globex", Properties: st(t, map[string]any{"email": "kim@globex.com"})}),
		{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "ws", UserId: "u1"}}},
	}
	h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, recs) })
	as := h.list(&routingv1.ListAssignmentsRequest{})
	if len(as) != 2 {
		t.Fatalf("assignments %v", as)
	}
	if l := as[0].GetLead(); l.GetEmail() != "" || len(l.GetAttributes()) != 0 || l.GetAccountId() != "acme" {
		t.Fatalf("forgotten lead kept %v", l)
	}
	if as[1].GetLead().GetEmail() != "kim@globex.com" {
		t.Fatalf("other lead scrubbed: %v", as[1].GetLead())
	}
	tombstones := 0
	for _, r := range records(t, h.db) {
		if r.GetTombstone() != nil {
			tombstones++
		}
	}
	if tombstones != 1 {
		t.Fatalf("%d tombstones forwarded on the routing log, want 1", tombstones)
	}
	// A later touch for the forgotten email finds nothing to touch.
	h.apply(func(tx *pstore.Tx) error {
		return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{ev("m4", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.contacted", Properties: st(t, map[string]any{"email": "pat@acme.com"})})})
	})
	if s := h.list(&routingv1.ListAssignmentsRequest{})[0].GetState(); s != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN {
		t.Fatalf("state %s", s)
	}
}

// TestTouchBeforeHealthHandoff checks that a CRM touch read from the
// ingestion log before the health signal it answers (health's log trails
// ingestion's) still counts for the handoff made from that signal, and only
// when it came after the signal opened.
func TestTouchBeforeHealthHandoff(t *testing.T) {
	opened := ny(16, 10, 0)
	tests := []struct {
		name      string
		touch     string
		touchAt   time.Time
		wantState string
		wantMet   bool
		// laterAt, when set, is a second call routing reads before the
		// handoff (a backlog): the first call after the window opened is
		// still the one credited.
		laterAt    time.Time
		creditedAt time.Time
	}{
		{"call after the window opened", "crm.contacted", opened.Add(3 * time.Hour), "touched", true, time.Time{}, time.Time{}},
		{"meeting after the window opened", "crm.meeting_booked", opened.Add(time.Hour), "touched", true, time.Time{}, time.Time{}},
		{"call before the window opened", "crm.contacted", opened.Add(-time.Hour), "open", false, time.Time{}, time.Time{}},
		{"no touch", "", time.Time{}, "open", false, time.Time{}, time.Time{}},
		{"two calls after the window opened: the first counts", "crm.contacted", opened.Add(2 * time.Hour), "touched", true, opened.Add(20 * 24 * time.Hour), opened.Add(2 * time.Hour)},
		{"a call before and one after: the one after counts", "crm.contacted", opened.Add(-time.Hour), "touched", true, opened.Add(5 * time.Hour), opened.Add(5 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(17, 10, 0))
			h.applyExample()
			recs := []*ingestionv1.LogRecord{{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", AccountId: "acme",
				Traits: st(t, map[string]any{"csm_id": "cara"}), Timestamp: timestamppb.New(opened.Add(-48 * time.Hour)),
			}}}}
			if tt.touch != "" {
				recs = append(recs, &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
					Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: tt.touch, MessageId: "touch", UserId: "cara@vendor",
					AccountId: "acme", Timestamp: timestamppb.New(tt.touchAt),
				}}})
			}
			if !tt.laterAt.IsZero() {
				recs = append(recs, &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
					Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.contacted", MessageId: "later", UserId: "cara@vendor",
					AccountId: "acme", Timestamp: timestamppb.New(tt.laterAt),
				}}})
			}
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, recs) })
			renewal := &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
				Workspace: "ws", AccountId: "acme", SignalId: "acme:renewal_window_90", Kind: commonv1.SignalKind_SIGNAL_KIND_RENEWAL,
				Reason: "renewal_window_90", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(opened),
			}}}
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, []*healthv1.LogRecord{renewal}) })
			as := h.list(&routingv1.ListAssignmentsRequest{})
			if got, want := summary(as), "renewal/acme/cara/existing-csm/"+tt.wantState; got != want {
				t.Fatalf("assignments %q, want %q", got, want)
			}
			a := as[0]
			if met := a.GetSla().GetMetAt() != nil; met != tt.wantMet {
				t.Errorf("SLA met = %v, want %v (sla %v)", met, tt.wantMet, a.GetSla())
			}
			credited := tt.creditedAt
			if credited.IsZero() {
				credited = tt.touchAt
			}
			if tt.wantMet && !a.GetFirstTouchAt().AsTime().Equal(credited) {
				t.Errorf("first touch at %v, want %v", a.GetFirstTouchAt().AsTime(), credited)
			}
		})
	}
}

// TestTouchBeforeCRMHandoff checks that a CRM contact delivered before the
// MQL, SQL or closed-won event it answers (a CRM sync out of order) still
// counts for it when it is dated after the handoff (TouchSkew allowing),
// the same as when the events arrive in time order.
func TestTouchBeforeCRMHandoff(t *testing.T) {
	created := ny(16, 10, 0)
	tests := []struct {
		name      string
		handoff   string
		touch     string
		touchAt   time.Time
		wantState string
		wantMet   bool
	}{
		{"contact ten minutes after the mql", "crm.mql", "crm.contacted", created.Add(10 * time.Minute), "touched", true},
		{"contact within the clock skew before the mql", "crm.mql", "crm.contacted", created.Add(-5 * time.Minute), "touched", true},
		{"contact a day before the mql answers an earlier one", "crm.mql", "crm.contacted", created.Add(-24 * time.Hour), "open", false},
		{"contact after the mql's deadline is met late", "crm.mql", "crm.contacted", created.Add(3 * 24 * time.Hour), "touched", false},
		{"meeting after the closed-won kickoff", "crm.closed_won", "crm.meeting_booked", created.Add(time.Hour), "touched", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(20, 10, 0))
			h.applyExample()
			touch := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: tt.touch, MessageId: "touch",
				AccountId: "acme", Properties: st(t, map[string]any{"email": "pat@acme.com"}), Timestamp: timestamppb.New(tt.touchAt),
			}}}
			handoff := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: tt.handoff, MessageId: "handoff",
				AccountId: "acme", Properties: st(t, map[string]any{"email": "pat@acme.com"}), Timestamp: timestamppb.New(created),
			}}}
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{touch}) })
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{handoff}) })
			as := h.list(&routingv1.ListAssignmentsRequest{})
			if len(as) != 1 {
				t.Fatalf("assignments %q, want one", summary(as))
			}
			a := as[0]
			if got := strings.ToLower(strings.TrimPrefix(a.GetState().String(), "ASSIGNMENT_STATE_")); got != tt.wantState {
				t.Fatalf("state %s, want %s (sla %v)", got, tt.wantState, a.GetSla())
			}
			if met := a.GetSla().GetMetAt() != nil; met != tt.wantMet {
				t.Errorf("SLA met on time = %v, want %v (sla %v)", met, tt.wantMet, a.GetSla())
			}
			if tt.wantState == "touched" && !tt.wantMet && !a.GetSla().GetMetLate() {
				t.Errorf("a touch after the deadline is not met late: %v", a.GetSla())
			}
		})
	}
}

// TestClearedSignalsCloseHandoffs checks that a pending RISK or RENEWAL
// handoff closes with reason "signal_cleared" once every health signal of
// its kind on the account has closed, and stays while one is still open.
func TestClearedSignalsCloseHandoffs(t *testing.T) {
	opened := ny(16, 10, 0)
	sig := func(kind commonv1.SignalKind, reason string, open bool, at time.Time) *healthv1.LogRecord {
		s := &commonv1.Signal{
			Workspace: "ws", AccountId: "acme", SignalId: "acme:" + reason, Kind: kind, Reason: reason,
			State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(opened),
		}
		if !open {
			s.State, s.ClosedAt = commonv1.SignalState_SIGNAL_STATE_CLOSED, timestamppb.New(at)
		}
		return &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: s}}
	}
	risk, renewal := commonv1.SignalKind_SIGNAL_KIND_RISK, commonv1.SignalKind_SIGNAL_KIND_RENEWAL
	tests := []struct {
		name    string
		records []*healthv1.LogRecord
		want    string // state/close reason of each handoff, by type
		// touch, when set, is a crm.contacted at that time that routing
		// reads before the last record (its event consumer ran ahead).
		touch time.Time
	}{
		{"risk cleared before its due time", []*healthv1.LogRecord{
			sig(risk, "usage_drop_30d", true, opened), sig(risk, "usage_drop_30d", false, opened.Add(time.Hour)),
		}, "risk:closed:signal_cleared:breached=false", time.Time{}},
		{"risk cleared after the breach stays breached", []*healthv1.LogRecord{
			sig(risk, "usage_drop_30d", true, opened), sig(risk, "usage_drop_30d", false, opened.Add(72*time.Hour)),
		}, "risk:closed:signal_cleared:breached=true", time.Time{}},
		{"another risk still open keeps the handoff", []*healthv1.LogRecord{
			sig(risk, "usage_drop_30d", true, opened), sig(risk, "nps_detractor", true, opened),
			sig(risk, "usage_drop_30d", false, opened.Add(time.Hour)),
		}, "risk:open::breached=false", time.Time{}},
		{"a renewal signal closing does not close a risk", []*healthv1.LogRecord{
			sig(risk, "usage_drop_30d", true, opened), sig(renewal, "renewal_window_90", true, opened),
			sig(renewal, "renewal_window_90", false, opened.Add(time.Hour)),
		}, "renewal:closed:signal_cleared:breached=false risk:open::breached=false", time.Time{}},
		{"a touch after the clear, read first, does not keep the handoff", []*healthv1.LogRecord{
			sig(risk, "usage_drop_30d", true, opened), sig(risk, "usage_drop_30d", false, opened.Add(72*time.Hour)),
		}, "risk:closed:signal_cleared:breached=true", opened.Add(96 * time.Hour)},
		{"a touch before the clear, read first, stands", []*healthv1.LogRecord{
			sig(risk, "usage_drop_30d", true, opened), sig(risk, "usage_drop_30d", false, opened.Add(72*time.Hour)),
		}, "risk:touched::breached=false", opened.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(20, 10, 0))
			h.applyExample()
			group := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", AccountId: "acme",
				Traits: st(t, map[string]any{"csm_id": "cara"}), Timestamp: timestamppb.New(opened.Add(-48 * time.Hour)),
			}}}
			h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{group}) })
			for i, r := range tt.records {
				if i == len(tt.records)-1 && !tt.touch.IsZero() {
					touch := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
						Workspace: "ws", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.contacted", MessageId: "touch",
						UserId: "cara@vendor", AccountId: "acme", Timestamp: timestamppb.New(tt.touch),
					}}}
					h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{touch}) })
				}
				h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyHealth(tx, 0, []*healthv1.LogRecord{r}) })
			}
			var got []string
			for _, a := range h.list(&routingv1.ListAssignmentsRequest{}) {
				typ := strings.ToLower(strings.TrimPrefix(a.GetType().String(), "HANDOFF_TYPE_"))
				state := strings.ToLower(strings.TrimPrefix(a.GetState().String(), "ASSIGNMENT_STATE_"))
				if state == "breached" {
					state = "open"
				}
				got = append(got, fmt.Sprintf("%s:%s:%s:breached=%v", typ, state, a.GetCloseReason(), a.GetSla().GetBreached()))
			}
			sort.Strings(got)
			if g := strings.Join(got, " "); g != tt.want {
				t.Fatalf("handoffs %q, want %q", g, tt.want)
			}
		})
	}
}
