package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/app"
	"github.com/cairn-dev/cairn/services/stages/internal/server"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const parts = 2

// rig runs a stages server over bufconn, fed by an in-process ingestion log.
type rig struct {
	t        testing.TB
	ingest   *stream.Log
	consumer *stream.Consumer[*ingestionv1.LogRecord]
	clock    *clock.Manual
	conn     *grpc.ClientConn
	heads    [parts]uint64
	// out is the stages log.
	out *stream.Log
}

var keys = auth.StaticKeys{
	"admin":   {KeyID: "k1", Workspace: "w", Role: auth.RoleAdmin},
	"reader":  {KeyID: "k2", Workspace: "w", Role: auth.RoleRead},
	"other":   {KeyID: "k3", Workspace: "w2", Role: auth.RoleAdmin},
	"service": {KeyID: "k4", Role: auth.RoleService},
}

func newRig(t testing.TB) *rig {
	t.Helper()
	clk := clock.NewManual(t0)
	ingestDB, db := storetest.Open(t), storetest.Open(t)
	ingest, err := stream.OpenLog(ingestDB, "ingestion", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	out, err := stream.OpenLog(db, "stages", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	source := stream.LocalSource(ingest, func(r stream.Record) (*ingestionv1.LogRecord, error) {
		lr := &ingestionv1.LogRecord{}
		if err := proto.Unmarshal(r.Data, lr); err != nil {
			return nil, err
		}
		lr.Offset, lr.Partition = r.Offset, r.Partition
		return lr, nil
	})
	a, err := app.New(app.Options{DB: db, Log: out, Source: source, Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: app.ConsumerName, DB: db, Source: source, Partitions: []uint32{0, 1},
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  a.Apply, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{App: a, Log: out, Lag: consumer.Lag})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	// As pkg/server does: authenticate, then map handler errors to status
	// once (apierr.Status).
	logger := slog.New(slog.DiscardHandler)
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(keys, server.Policy()), apierr.UnaryServerInterceptor(logger)),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, server.Policy()), apierr.StreamServerInterceptor(logger)),
	)
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var eg errgroup.Group
	eg.Go(func() error { return g.Serve(lis) })
	eg.Go(func() error { return consumer.Run(ctx) })
	eg.Go(func() error { return a.RunReplays(ctx) })
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		g.Stop()
		if err := eg.Wait(); err != nil && err != grpc.ErrServerStopped {
			t.Errorf("server: %v", err)
		}
	})
	return &rig{t: t, ingest: ingest, consumer: consumer, clock: clk, conn: conn, out: out}
}

func (r *rig) client(key string) (stagesv1.StagesServiceClient, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	r.t.Cleanup(cancel)
	return stagesv1.NewStagesServiceClient(r.conn), metadataCtx(ctx, key)
}

// send appends events to the ingestion log and waits until they are applied.
func (r *rig) send(evs ...*ingestionv1.Event) {
	r.t.Helper()
	ctx := context.Background()
	for _, e := range evs {
		p := stream.Partition(e.GetWorkspace(), e.GetAccountId(), parts)
		data, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}})
		if err != nil {
			r.t.Fatal(err)
		}
		off, err := r.ingest.Append(ctx, p, data)
		if err != nil {
			r.t.Fatal(err)
		}
		r.heads[p] = off
	}
	for p, h := range r.heads {
		if h > 0 {
			if err := r.consumer.WaitFor(ctx, uint32(p), h); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

func event(acct, user, name string, at time.Time, props map[string]any) *ingestionv1.Event {
	var s *structpb.Struct
	if props != nil {
		s, _ = structpb.NewStruct(props)
	}
	return &ingestionv1.Event{
		Workspace: "w", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: acct + user + name + at.String(),
		UserId: user, AccountId: acct, Event: name, Source: "product", Timestamp: timestamppb.New(at), Properties: s,
	}
}

func identify(acct, user string, at time.Time, traits map[string]any) *ingestionv1.Event {
	s, _ := structpb.NewStruct(traits)
	return &ingestionv1.Event{Workspace: "w", Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: user, AccountId: acct, Timestamp: timestamppb.New(at), Traits: s}
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("err = %v, want %s containing %q", err, code, msg)
	}
}

func TestDefinitions(t *testing.T) {
	r := newRig(t)
	admin, ctx := r.client("admin")
	_, rctx := r.client("reader")

	bad := "id: j\nstages:\n  - id: one\n    exit:\n      - name: done\n        expr: count(\"x\", \"3q\") > 0\n"
	v, err := admin.ValidateJourney(rctx, &stagesv1.ValidateJourneyRequest{Yaml: bad})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetValid() || len(v.GetErrors()) != 1 || v.GetErrors()[0].GetPath() != "stages[one].exit[done]" {
		t.Fatalf("validate = %v", v)
	}
	_, err = admin.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Yaml: bad})
	wantCode(t, err, codes.InvalidArgument, "stages[one].exit[done]: 1:12: window \"3q\"")
	if fields := violations(err); fmt.Sprint(fields) != "[stages[one].exit[done]]" {
		t.Errorf("field violations = %v, want [stages[one].exit[done]]", fields)
	}
	_, err = admin.ApplyJourney(rctx, &stagesv1.ApplyJourneyRequest{Yaml: bad})
	wantCode(t, err, codes.PermissionDenied, "may not call")

	good := "id: j\nstages:\n  - id: one\n    exit:\n      - name: done\n        expr: count(\"x\", \"3d\") > 0\n  - id: two\n"
	a1, err := admin.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Yaml: good})
	if err != nil || a1.GetDefinition().GetVersion() != 1 || !a1.GetActive() {
		t.Fatalf("apply v1 = %v, %v", a1, err)
	}
	same, err := admin.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Definition: a1.GetDefinition()})
	if err != nil || same.GetDefinition().GetVersion() != 1 || !same.GetUnchanged() || !same.GetActive() {
		t.Fatalf("apply v1 again = %v, %v", same, err)
	}
	changed := strings.Replace(good, "  - id: two\n", "  - id: two\n    name: Two\n", 1)
	a2, err := admin.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Yaml: changed})
	if err != nil || a2.GetDefinition().GetVersion() != 2 || a2.GetActive() || a2.GetUnchanged() {
		t.Fatalf("apply v2 = %v, %v", a2, err)
	}
	g, err := admin.GetJourney(rctx, &stagesv1.GetJourneyRequest{JourneyId: "j"})
	if err != nil || g.GetDefinition().GetVersion() != 1 || !g.GetActive() || !strings.Contains(g.GetYaml(), "id: one") {
		t.Fatalf("get = %v, %v", g, err)
	}
	_, err = admin.GetJourney(rctx, &stagesv1.GetJourneyRequest{JourneyId: "j", Version: 9})
	wantCode(t, err, codes.NotFound, "v9")
	l1, err := admin.ListJourneyVersions(rctx, &stagesv1.ListJourneyVersionsRequest{JourneyId: "j", Page: &commonv1.PageRequest{PageSize: 1}})
	if err != nil || len(l1.GetDefinitions()) != 1 || l1.GetDefinitions()[0].GetVersion() != 2 || l1.GetActiveVersion() != 1 || l1.GetPage().GetNextPageToken() == "" {
		t.Fatalf("list page 1 = %v, %v", l1, err)
	}
	l2, err := admin.ListJourneyVersions(rctx, &stagesv1.ListJourneyVersionsRequest{JourneyId: "j", Page: &commonv1.PageRequest{PageSize: 1, PageToken: l1.GetPage().GetNextPageToken()}})
	if err != nil || len(l2.GetDefinitions()) != 1 || l2.GetDefinitions()[0].GetVersion() != 1 || l2.GetPage().GetNextPageToken() != "" {
		t.Fatalf("list page 2 = %v, %v", l2, err)
	}
	_, err = admin.ListJourneyVersions(rctx, &stagesv1.ListJourneyVersionsRequest{JourneyId: "j", Page: &commonv1.PageRequest{PageToken: "!!"}})
	wantCode(t, err, codes.InvalidArgument, "page.page_token")
	tpl, err := admin.ListJourneyTemplates(rctx, &stagesv1.ListJourneyTemplatesRequest{})
	if err != nil || len(tpl.GetTemplates()) != 3 {
		t.Fatalf("templates = %v, %v", tpl, err)
	}
	_, err = admin.GetJourney(ctx, &stagesv1.GetJourneyRequest{Workspace: "w2", JourneyId: "j"})
	wantCode(t, err, codes.PermissionDenied, "workspace")
	act, err := admin.ActivateJourney(ctx, &stagesv1.ActivateJourneyRequest{JourneyId: "j", Version: 2})
	if err != nil || act.GetDefinition().GetVersion() != 2 {
		t.Fatalf("activate = %v, %v", act, err)
	}
}

func TestAccountQueries(t *testing.T) {
	r := newRig(t)
	c, ctx := r.client("reader")
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	// No journey applied: the first event installs the five-stage template as "default".
	r.send(
		identify("acme", "u1", day(0), map[string]any{"persona": "champion"}),
		identify("acme", "u2", day(0), map[string]any{"title": "VP Finance"}),
		event("acme", "u1", "demo_requested", day(0), nil),
		event("acme", "u1", "security_review_started", day(1), nil),
		event("beta", "u9", "content_viewed", day(0), nil),
		event("gamma", "u7", "contract_signed", day(0), nil),
		event("gamma", "u7", "login", day(2), nil),
	)
	r.clock.Set(day(10))

	j, err := c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	aj := j.GetJourney()
	if aj.GetStage() != "evaluation" || aj.GetJourneyId() != "default" || aj.GetVersion() != 1 || len(aj.GetHistory()) != 1 {
		t.Fatalf("journey = %v", aj)
	}
	if aj.GetTimeInStage().AsDuration() != 10*24*time.Hour {
		t.Errorf("time in stage = %v", aj.GetTimeInStage().AsDuration())
	}
	if len(aj.GetExitCriteria()) != 1 || aj.GetExitCriteria()[0].GetName() != "committed" || aj.GetExitCriteria()[0].GetMet() {
		t.Errorf("what's left = %v", aj.GetExitCriteria())
	}
	_, err = c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: "nope"})
	wantCode(t, err, codes.NotFound, "nope")
	_, err = c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{})
	wantCode(t, err, codes.InvalidArgument, "account_id: required")
	if fields := violations(err); fmt.Sprint(fields) != "[account_id]" {
		t.Errorf("field violations = %v, want [account_id]", fields)
	}
	_, err = c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Segment: strings.Repeat("s", 200)})
	wantCode(t, err, codes.InvalidArgument, "segment: longer than 128 characters")

	list, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Stage: "evaluation"})
	if err != nil || len(list.GetAccounts()) != 1 || list.GetAccounts()[0].GetAccountId() != "acme" {
		t.Fatalf("list by stage = %v, %v", list, err)
	}
	all, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageSize: 2}})
	if err != nil || len(all.GetAccounts()) != 2 || all.GetPage().GetNextPageToken() == "" {
		t.Fatalf("list page 1 = %v, %v", all, err)
	}
	rest, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageSize: 2, PageToken: all.GetPage().GetNextPageToken()}})
	if err != nil || len(rest.GetAccounts()) != 1 || rest.GetPage().GetNextPageToken() != "" {
		t.Fatalf("list page 2 = %v, %v", rest, err)
	}

	bc, err := c.GetBuyingCommittee(ctx, &stagesv1.GetBuyingCommitteeRequest{AccountId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]*stagesv1.Persona{}
	for _, p := range bc.GetPersonas() {
		roles[p.GetRole()] = p
	}
	if p := roles["champion"]; len(p.GetUserIds()) != 1 || !p.GetEngaged() || p.GetDaysSinceEngaged() != 9 {
		t.Errorf("champion = %v", p)
	}
	if p := roles["economic_buyer"]; len(p.GetUserIds()) != 1 || p.GetUserIds()[0] != "u2" {
		t.Errorf("economic buyer = %v", p)
	}
	if len(bc.GetStuckSignals()) != 1 || bc.GetStuckSignals()[0].GetReason() != "security_review_open_7d" {
		t.Errorf("stuck = %v", bc.GetStuckSignals())
	}

	m, err := c.GetMomentsOfTruth(ctx, &stagesv1.GetMomentsOfTruthRequest{})
	if err != nil || len(m.GetMoments()) != 2 {
		t.Fatalf("moments = %v, %v", m, err)
	}
	if login := m.GetMoments()[0]; login.GetEligible() != 1 || login.GetReached() != 1 || login.GetRate() != 1 {
		t.Errorf("first login = %v", login)
	}
	if value := m.GetMoments()[1]; value.GetEligible() != 0 {
		t.Errorf("first value = %v (deadline not passed, not reached)", value)
	}

	f, err := c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{})
	if err != nil || len(f.GetStages()) != 5 || f.GetAccounts() != 3 {
		t.Fatalf("funnel = %v, %v", f, err)
	}
	if ev := f.GetStages()[1]; ev.GetStage() != "evaluation" || ev.GetEntered() != 1 || ev.GetCurrent() != 1 {
		t.Errorf("evaluation row = %v", ev)
	}
	// The gateway's fan-out asks for the raw times too; the figures are the same.
	fp, err := c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{Parts: true})
	if err != nil || !proto.Equal(aggregate.Funnel([]*stagesv1.GetFunnelResponse{fp}, false), f) {
		t.Fatalf("funnel parts = %v, %v; want the funnel %v with times", fp, err, f)
	}
	_, err = c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{Cohort: "March"})
	wantCode(t, err, codes.InvalidArgument, "cohort")

	// The funnel's date range, conversion window and account lists.
	ranged, err := c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{Window: &commonv1.TimeWindow{Start: timestamppb.New(day(1))}, ConversionWindowDays: 7,
		AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, AccountsStage: "evaluation"})
	if err != nil || ranged.GetStages()[1].GetEntered() != 0 || ranged.GetStages()[1].GetCurrent() != 1 || ranged.GetAccountIds() != nil {
		t.Errorf("funnel from day 1 (acme entered evaluation on day 0, and is in it now) = %v, %v", ranged.GetStages(), err)
	}
	ids, err := c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, AccountsStage: "evaluation"})
	if err != nil || fmt.Sprint(ids.GetAccountIds()) != "[acme]" {
		t.Errorf("accounts that entered evaluation = %v, %v", ids.GetAccountIds(), err)
	}
	for _, tc := range []struct {
		req  *stagesv1.GetFunnelRequest
		want string
	}{
		{&stagesv1.GetFunnelRequest{Window: &commonv1.TimeWindow{Start: timestamppb.New(day(2)), End: timestamppb.New(day(1))}}, "window.end: must be after window.start"},
		{&stagesv1.GetFunnelRequest{ConversionWindowDays: -1}, "conversion_window_days"},
		{&stagesv1.GetFunnelRequest{AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED}, "accounts_stage: required"},
		{&stagesv1.GetFunnelRequest{AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_REACHED, AccountsStage: "evaluation"}, "accounts_stage"},
		{&stagesv1.GetFunnelRequest{AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, AccountsStage: "evaluation", AccountsBucket: 2}, "accounts_bucket"},
		{&stagesv1.GetFunnelRequest{AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, AccountsStage: "nope"}, `accounts_stage: unknown stage "nope"`},
		{&stagesv1.GetFunnelRequest{Trend: 9}, "trend"},
	} {
		_, err := c.GetFunnel(ctx, tc.req)
		wantCode(t, err, codes.InvalidArgument, tc.want)
	}
	_, err = c.GetFunnel(ctx, &stagesv1.GetFunnelRequest{JourneyId: "nope"})
	wantCode(t, err, codes.NotFound, "nope")

	js, err := c.ListJourneys(ctx, &stagesv1.ListJourneysRequest{})
	if err != nil || len(js.GetJourneys()) != 1 || js.GetJourneys()[0].GetId() != "default" || !js.GetJourneys()[0].GetIsDefault() ||
		js.GetJourneys()[0].GetStages() != 5 || js.GetJourneys()[0].GetActiveVersion() != 1 {
		t.Errorf("journeys = %v, %v", js, err)
	}
}

func TestSignalsAndSubscribe(t *testing.T) {
	r := newRig(t)
	c, ctx := r.client("reader")
	svcClient, sctx := r.client("service")
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	r.send(event("acme", "u1", "demo_requested", day(0), nil))
	// Ten days later nothing was heard from a champion: the next event re-evaluates.
	r.send(event("acme", "u5", "pricing_viewed", day(11), nil))

	sigs, err := c.ListSignals(ctx, &stagesv1.ListSignalsRequest{State: commonv1.SignalState_SIGNAL_STATE_OPEN})
	if err != nil || len(sigs.GetSignals()) != 1 || sigs.GetSignals()[0].GetReason() != "evaluation.no_champion_10d" {
		t.Fatalf("signals = %v, %v", sigs, err)
	}
	byS, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Signal: "evaluation.no_champion_10d"})
	if err != nil || len(byS.GetAccounts()) != 1 || byS.GetAccounts()[0].GetOpenSignals() != 1 {
		t.Fatalf("accounts by signal = %v, %v", byS, err)
	}

	_, err = c.Subscribe(ctx, &stagesv1.SubscribeRequest{})
	if err == nil {
		var stream grpc.ServerStreamingClient[stagesv1.SubscribeResponse]
		stream, err = c.Subscribe(ctx, &stagesv1.SubscribeRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
	}
	wantCode(t, err, codes.PermissionDenied, "may not call")

	p := stream.Partition("w", "acme", parts)
	sub, err := svcClient.Subscribe(sctx, &stagesv1.SubscribeRequest{Partition: p})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		resp, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range resp.GetRecords() {
			if rec.GetPartition() != p || rec.GetOffset() == 0 {
				t.Errorf("record position = %d/%d", rec.GetPartition(), rec.GetOffset())
			}
			switch k := rec.GetKind().(type) {
			case *stagesv1.LogRecord_Transition:
				got = append(got, k.Transition.GetFromStage()+">"+k.Transition.GetToStage()+":"+k.Transition.GetTriggerMessageId())
			case *stagesv1.LogRecord_Signal:
				got = append(got, "+"+k.Signal.GetReason())
			}
		}
	}
	want := ">evaluation:acmeu1demo_requested" + day(0).String() + " +evaluation.no_champion_10d"
	if strings.Join(got, " ") != want {
		t.Errorf("published %q, want %q", strings.Join(got, " "), want)
	}
	_, err = svcClient.Subscribe(sctx, &stagesv1.SubscribeRequest{Partition: 7})
	if err == nil {
		var s2 grpc.ServerStreamingClient[stagesv1.SubscribeResponse]
		s2, _ = svcClient.Subscribe(sctx, &stagesv1.SubscribeRequest{Partition: 7})
		_, err = s2.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "partition")
}

func TestReplayAndActivate(t *testing.T) {
	r := newRig(t)
	admin, ctx := r.client("admin")
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	v1 := "id: j\nstages:\n  - id: new\n  - id: paying\n    entry: [{name: paid, expr: 'has_event(\"paid\")'}]\n"
	if _, err := admin.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Yaml: v1}); err != nil {
		t.Fatal(err)
	}
	r.send(event("a", "u", "visit", day(0), nil), event("b", "u", "visit", day(0), nil), event("b", "u", "big_deal", day(1), nil))
	// v2 adds a stage between: big deals become "qualified".
	v2 := "id: j\nstages:\n  - id: new\n  - id: qualified\n    entry: [{name: big, expr: 'has_event(\"big_deal\")'}]\n  - id: paying\n    entry: [{name: paid, expr: 'has_event(\"paid\")'}]\n"
	ap, err := admin.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Yaml: v2})
	if err != nil || ap.GetActive() {
		t.Fatalf("apply v2 = %v, %v", ap, err)
	}
	st, err := admin.StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 2})
	if err != nil || st.GetReplay().GetTotal() != 3 {
		t.Fatalf("start replay = %v, %v", st, err)
	}
	var rp *stagesv1.Replay
	for rp.GetState() != stagesv1.ReplayState_REPLAY_STATE_DONE {
		g, err := admin.GetReplay(ctx, &stagesv1.GetReplayRequest{ReplayId: st.GetReplay().GetReplayId()})
		if err != nil {
			t.Fatal(err)
		}
		rp = g.GetReplay()
		if rp.GetState() == stagesv1.ReplayState_REPLAY_STATE_FAILED {
			t.Fatalf("replay failed: %s", rp.GetError())
		}
		if ctx.Err() != nil {
			t.Fatal("replay did not finish")
		}
		time.Sleep(time.Millisecond) // waiting for progress of a background job, not for a deadline
	}
	if rp.GetProcessed() != 3 || rp.GetStageCounts()["qualified"] != 1 || rp.GetStageCounts()["new"] != 1 {
		t.Fatalf("replay = %v", rp)
	}
	// Live state is untouched until activation.
	j, err := admin.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{JourneyId: "j", AccountId: "b"})
	if err != nil || j.GetJourney().GetStage() != "new" || j.GetJourney().GetVersion() != 1 {
		t.Fatalf("live before activation = %v, %v", j, err)
	}
	// An event arrives after the replay finished: activation catches up.
	r.send(event("c", "u", "big_deal", day(2), nil))
	if _, err := admin.ActivateJourney(ctx, &stagesv1.ActivateJourneyRequest{JourneyId: "j", Version: 2}); err != nil {
		t.Fatal(err)
	}
	for acct, want := range map[string]string{"a": "new", "b": "qualified", "c": "qualified"} {
		j, err := admin.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{JourneyId: "j", AccountId: acct})
		if err != nil || j.GetJourney().GetStage() != want || j.GetJourney().GetVersion() != 2 {
			t.Errorf("%s after activation = %v, %v; want stage %s v2", acct, j.GetJourney(), err, want)
		}
	}
	// Activating again (e.g. back and forth) only switches the version.
	if _, err := admin.ActivateJourney(ctx, &stagesv1.ActivateJourneyRequest{JourneyId: "j", Version: 2}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 7})
	wantCode(t, err, codes.NotFound, "v7")

	// The gateway names a replay once for every replica: the id is taken
	// as given, and an id already used is refused.
	_, err = admin.StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 2, ReplayId: st.GetReplay().GetReplayId()})
	wantCode(t, err, codes.AlreadyExists, st.GetReplay().GetReplayId())
	named, err := admin.StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 2, ReplayId: "chosen-by-gateway"})
	if err != nil || named.GetReplay().GetReplayId() != "chosen-by-gateway" {
		t.Fatalf("start named replay = %v, %v", named, err)
	}
	for rp = nil; rp.GetState() != stagesv1.ReplayState_REPLAY_STATE_DONE; {
		g, err := admin.GetReplay(ctx, &stagesv1.GetReplayRequest{ReplayId: "chosen-by-gateway"})
		if err != nil || g.GetReplay().GetState() == stagesv1.ReplayState_REPLAY_STATE_FAILED || ctx.Err() != nil {
			t.Fatalf("named replay = %v, %v", g, err)
		}
		rp = g.GetReplay()
		time.Sleep(time.Millisecond) // waiting for progress of a background job, not for a deadline
	}
}

// violations lists the fields of a status error's BadRequest detail.
func violations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

func metadataCtx(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}
