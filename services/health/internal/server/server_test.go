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
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var keys = auth.StaticKeys{
	"read":  {KeyID: "r", Workspace: "w", Role: auth.RoleRead},
	"write": {KeyID: "wr", Workspace: "w", Role: auth.RoleWrite},
	"admin": {KeyID: "a", Workspace: "w", Role: auth.RoleAdmin},
	"other": {KeyID: "o", Workspace: "other", Role: auth.RoleAdmin},
	"svc":   {KeyID: "s", Role: auth.RoleService},
}

type env struct {
	db      *kv.DB
	app     *app.App
	clk     *clock.Manual
	log     *stream.Log
	clients map[string]healthv1.HealthServiceClient
	// lags is what GetStatus reports; the tests add consumers' lag to it.
	lags *pkgserver.Lags
}

func setup(t *testing.T) *env { return setupB(t) }

// setupB starts the service over bufconn for a test or benchmark.
func setupB(t testing.TB) *env {
	t.Helper()
	db := storetest.Open(t)
	clk := clock.NewManual(t0.AddDate(0, 0, 200))
	log, err := stream.OpenLog(db, "health", stream.LogOptions{Partitions: 4, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Options{DB: db, Log: log, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	// As pkg/server does: authenticate, then map the handler's error to a
	// status once (apierr's interceptors).
	logger := slog.New(slog.DiscardHandler)
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(keys, server.Policy()), apierr.UnaryServerInterceptor(logger)),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, server.Policy()), apierr.StreamServerInterceptor(logger)),
	)
	lags := &pkgserver.Lags{}
	server.New(a, log, lags.Lag).Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	e := &env{db: db, app: a, clk: clk, log: log, clients: map[string]healthv1.HealthServiceClient{}, lags: lags}
	for tok := range keys {
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(auth.Bearer(tok)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		e.clients[tok] = healthv1.NewHealthServiceClient(conn)
	}
	return e
}

func ev(acct string, day int, typ ingestionv1.EventType, user, name string, kvs ...any) *ingestionv1.LogRecord {
	m := map[string]any{}
	for i := 0; i+1 < len(kvs); i += 2 {
		m[kvs[i].(string)] = kvs[i+1]
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // fixtures only
	}
	e := &ingestionv1.Event{Workspace: "w", AccountId: acct, Type: typ, UserId: user, Event: name,
		Timestamp: timestamppb.New(t0.AddDate(0, 0, day).Add(12 * time.Hour))}
	if typ == ingestionv1.EventType_EVENT_TYPE_TRACK {
		e.Properties = s
	} else {
		e.Traits = s
	}
	return &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}}
}

// features are the vocabulary's features (vocab.Features()), the only
// events the default model counts as feature adoption.
var features = vocab.Features()

// seed loads four paying accounts over 150 days: "big" is healthy and
// renews, "small" declines and raises an NPS detractor, "lost" declines like
// small and churns on day 140, "mid" sits between. A churned account is no
// longer in lists, so the lists hold big, mid and small.
func (e *env) seed(t *testing.T) {
	t.Helper()
	var recs []*ingestionv1.LogRecord
	gt := ingestionv1.EventType_EVENT_TYPE_GROUP
	tr := ingestionv1.EventType_EVENT_TYPE_TRACK
	end := t0.AddDate(0, 0, 260).Format(time.RFC3339)
	recs = append(recs,
		ev("big", 0, gt, "", "", "seats", 5, "arr", 90000, "contract_end", end),
		ev("mid", 0, gt, "", "", "seats", 10, "arr", 30000, "contract_end", end),
		ev("small", 0, gt, "", "", "seats", 10, "arr", 5000, "contract_end", t0.AddDate(0, 0, 160).Format(time.RFC3339)),
		ev("lost", 0, gt, "", "", "seats", 10, "arr", 4000, "contract_end", t0.AddDate(0, 0, 160).Format(time.RFC3339)))
	for _, acct := range []string{"big", "mid", "small", "lost"} {
		recs = append(recs, ev(acct, 0, tr, "", "billing.subscription_started", "plan", "pro"))
	}
	for day := 0; day < 150; day++ {
		for u := 0; u < 5; u++ {
			recs = append(recs, ev("big", day, tr, fmt.Sprintf("u%d", u), features[(day+u)%6]))
		}
		recs = append(recs, ev("mid", day, tr, "u1", features[1]), ev("mid", day, tr, "u2", features[day%3]))
		if day < 40 {
			recs = append(recs, ev("small", day, tr, "u1", features[1]), ev("lost", day, tr, "u1", features[1]))
		}
	}
	it := ingestionv1.EventType_EVENT_TYPE_IDENTIFY
	recs = append(recs,
		ev("big", 1, it, "u0", "", "role", "champion"),
		ev("big", 2, tr, "u0", "integration.connected", "integration", "salesforce"),
		ev("big", 3, tr, "u0", "integration.connected", "integration", "slack"),
		ev("big", 5, tr, "u0", "activated"),
		ev("big", 120, tr, "u0", "survey.nps", "score", 9),
		ev("big", 120, tr, "u0", "meeting.qbr_held"),
		ev("mid", 1, it, "u1", "", "role", "champion"),
		ev("mid", 2, tr, "u1", "integration.connected", "integration", "slack"),
		ev("mid", 5, tr, "u1", "activated"),
		ev("mid", 100, tr, "u1", "survey.nps", "score", 8),
		ev("small", 100, tr, "u1", "survey.nps", "score", 2),
		ev("small", 140, tr, "u1", "survey.nps", "score", 2),
		ev("lost", 100, tr, "u1", "survey.nps", "score", 2),
		ev("lost", 140, tr, "", "billing.churned"),
		ev("big", 140, tr, "", "billing.renewed"))
	for i := 0; i < len(recs); i += 100 {
		j := min(i+100, len(recs))
		if err := e.db.Update(func(tx *kv.Tx) error { return e.app.ApplyIngestion(tx, 0, recs[i:j]) }); err != nil {
			t.Fatal(err)
		}
	}
}

func code(err error) codes.Code { return status.Code(err) }

func TestGetAccountHealth(t *testing.T) {
	e := setup(t)
	e.seed(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		client string
		req    *healthv1.GetAccountHealthRequest
		code   codes.Code
		msg    string
	}{
		{"ok", "read", &healthv1.GetAccountHealthRequest{AccountId: "big"}, codes.OK, ""},
		{"explicit own workspace", "read", &healthv1.GetAccountHealthRequest{Workspace: "w", AccountId: "big"}, codes.OK, ""},
		{"service names workspace", "svc", &healthv1.GetAccountHealthRequest{Workspace: "w", AccountId: "big"}, codes.OK, ""},
		{"unknown account", "read", &healthv1.GetAccountHealthRequest{AccountId: "nope"}, codes.NotFound, ""},
		{"missing account", "read", &healthv1.GetAccountHealthRequest{}, codes.InvalidArgument, "account_id: required"},
		{"long account", "read", &healthv1.GetAccountHealthRequest{AccountId: strings.Repeat("a", 300)}, codes.InvalidArgument, "account_id: longer than 256 characters"},
		{"other workspace", "other", &healthv1.GetAccountHealthRequest{Workspace: "w", AccountId: "big"}, codes.PermissionDenied, ""},
		{"other workspace's own view is empty", "other", &healthv1.GetAccountHealthRequest{AccountId: "big"}, codes.NotFound, ""},
		{"write key cannot read", "write", &healthv1.GetAccountHealthRequest{AccountId: "big"}, codes.PermissionDenied, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.clients[tt.client].GetAccountHealth(ctx, tt.req)
			if code(err) != tt.code || (tt.msg != "" && status.Convert(err).Message() != tt.msg) {
				t.Fatalf("err = %v, want %v %q", err, tt.code, tt.msg)
			}
			if err != nil {
				return
			}
			h := resp.GetHealth()
			if h.GetScore() < 80 || h.GetBand() != healthv1.Band_BAND_HEALTHY || len(h.GetComponents()) != 9 || h.GetArr() != 90000 {
				t.Errorf("big: score %v band %v components %d arr %v", h.GetScore(), h.GetBand(), len(h.GetComponents()), h.GetArr())
			}
		})
	}
}

func TestListAccountsAndSignals(t *testing.T) {
	e := setup(t)
	e.seed(t)
	ctx := context.Background()
	c := e.clients["read"]

	all, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{Sort: healthv1.AccountSort_ACCOUNT_SORT_ARR})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range all.GetAccounts() {
		ids = append(ids, r.GetAccountId())
	}
	if strings.Join(ids, ",") != "big,mid,small" || all.GetPage().GetTotalSize() != 3 {
		t.Fatalf("by ARR: %v", ids)
	}
	p1, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{Sort: healthv1.AccountSort_ACCOUNT_SORT_SCORE, Page: &commonv1.PageRequest{PageSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{Sort: healthv1.AccountSort_ACCOUNT_SORT_SCORE, Page: &commonv1.PageRequest{PageSize: 2, PageToken: p1.GetPage().GetNextPageToken()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.GetAccounts()) != 2 || len(p2.GetAccounts()) != 1 || p2.GetPage().GetNextPageToken() != "" ||
		p1.GetAccounts()[0].GetAccountId() != "small" || p2.GetAccounts()[0].GetAccountId() != "big" {
		t.Fatalf("paged by score: %v / %v", p1.GetAccounts(), p2.GetAccounts())
	}
	risky, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{Band: healthv1.Band_BAND_AT_RISK})
	if err != nil {
		t.Fatal(err)
	}
	if len(risky.GetAccounts()) != 1 || risky.GetAccounts()[0].GetAccountId() != "small" {
		t.Fatalf("at risk: %v", risky.GetAccounts())
	}
	det, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{Signal: "nps_detractor"})
	if err != nil || len(det.GetAccounts()) != 1 || det.GetAccounts()[0].GetAccountId() != "small" {
		t.Fatalf("by signal: %v %v", det.GetAccounts(), err)
	}
	// Contract ends on day 160; the clock is at day 200 but small's last
	// evaluation was at day 140: 20 days left -> the 30-day window.
	rw, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{RenewalWindow: 30})
	if err != nil || len(rw.GetAccounts()) != 1 || rw.GetAccounts()[0].GetRenewalPlay() != "strategic_business_review" {
		t.Fatalf("renewal window 30: %v %v", rw.GetAccounts(), err)
	}
	if _, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{RenewalWindow: 45}); code(err) != codes.InvalidArgument ||
		status.Convert(err).Message() != "renewal_window: must be 120, 90, 60 or 30" {
		t.Fatalf("bad window: %v", err)
	}
	if _, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageToken: "!!"}}); code(err) != codes.InvalidArgument {
		t.Fatalf("bad token: %v", err)
	}

	sig, err := c.ListSignals(ctx, &healthv1.ListSignalsRequest{AccountId: "small", Kind: commonv1.SignalKind_SIGNAL_KIND_RISK, State: commonv1.SignalState_SIGNAL_STATE_OPEN})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, s := range sig.GetSignals() {
		reasons[s.GetReason()] = true
		if s.GetAccountId() != "small" || s.GetKind() != commonv1.SignalKind_SIGNAL_KIND_RISK || s.GetState() != commonv1.SignalState_SIGNAL_STATE_OPEN {
			t.Errorf("filter leaked %v", s)
		}
	}
	if !reasons["nps_detractor"] || !reasons["single_active_user"] {
		t.Errorf("small's open risk signals: %v", reasons)
	}
	// Page through every signal one at a time: same set, no repeats.
	seen := map[string]bool{}
	tok := ""
	for i := 0; i < 100; i++ {
		r, err := c.ListSignals(ctx, &healthv1.ListSignalsRequest{Page: &commonv1.PageRequest{PageSize: 1, PageToken: tok}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.GetSignals() {
			if seen[s.GetSignalId()] {
				t.Fatalf("signal %s repeated", s.GetSignalId())
			}
			seen[s.GetSignalId()] = true
		}
		if tok = r.GetPage().GetNextPageToken(); tok == "" {
			break
		}
	}
	if !seen["small/risk/nps_detractor"] {
		t.Errorf("paging missed signals: %v", seen)
	}
}

func TestHistoryBacktestAndRescore(t *testing.T) {
	e := setup(t)
	e.seed(t)
	ctx := context.Background()
	c := e.clients["read"]

	h, err := c.ListHealthHistory(ctx, &healthv1.ListHealthHistoryRequest{AccountId: "mid", Page: &commonv1.PageRequest{PageSize: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.GetSnapshots()) != 10 || h.GetSnapshots()[0].GetDay() != "2026-05-30" || h.GetSnapshots()[9].GetDay() != "2026-05-21" {
		t.Fatalf("history page: %v", h.GetSnapshots())
	}
	h2, err := c.ListHealthHistory(ctx, &healthv1.ListHealthHistoryRequest{AccountId: "mid", Page: &commonv1.PageRequest{PageSize: 10, PageToken: h.GetPage().GetNextPageToken()}})
	if err != nil || h2.GetSnapshots()[0].GetDay() != "2026-05-20" {
		t.Fatalf("second page: %v %v", h2.GetSnapshots(), err)
	}
	w, err := c.ListHealthHistory(ctx, &healthv1.ListHealthHistoryRequest{AccountId: "mid", Window: &commonv1.TimeWindow{
		Start: timestamppb.New(t0.AddDate(0, 0, 10)), End: timestamppb.New(t0.AddDate(0, 0, 13))}})
	if err != nil || len(w.GetSnapshots()) != 3 || w.GetSnapshots()[0].GetDay() != "2026-01-13" {
		t.Fatalf("window: %v %v", w.GetSnapshots(), err)
	}

	bt, err := c.Backtest(ctx, &healthv1.BacktestRequest{HorizonDays: 60})
	if err != nil {
		t.Fatal(err)
	}
	if bt.GetRenewed() != 1 || bt.GetChurned() != 1 || bt.GetAuc() != 1 || bt.GetHorizonDays() != 60 || len(bt.GetComponents()) == 0 {
		t.Fatalf("backtest: %v", bt)
	}
	if len(bt.GetSamples()) != 0 {
		t.Fatalf("backtest without parts returned samples: %v", bt.GetSamples())
	}
	// The gateway's fan-out asks for the samples too; the figures are the same.
	btp, err := c.Backtest(ctx, &healthv1.BacktestRequest{HorizonDays: 60, Parts: true})
	if err != nil || len(btp.GetSamples()) != 2 || len(btp.GetSamples()[0].GetPoints()) != len(btp.GetComponents()) ||
		!proto.Equal(aggregate.Backtest([]*healthv1.BacktestResponse{btp}, false), bt) {
		t.Fatalf("backtest parts: %v %v", btp, err)
	}

	if _, err := c.Rescore(ctx, &healthv1.RescoreRequest{}); code(err) != codes.PermissionDenied {
		t.Fatalf("read key rescored: %v", err)
	}
	rs, err := e.clients["admin"].Rescore(ctx, &healthv1.RescoreRequest{})
	if err != nil || rs.GetAccounts() != 4 {
		t.Fatalf("rescore: %v %v", rs, err)
	}
	// Rescored at day 200: small's contract ended on day 160, so its
	// renewal window closed.
	rw, err := c.ListAccounts(ctx, &healthv1.ListAccountsRequest{RenewalWindow: 30})
	if err != nil || len(rw.GetAccounts()) != 0 {
		t.Fatalf("after rescore: %v %v", rw.GetAccounts(), err)
	}
}

const validYAML = `
id: simple
components:
  - name: breadth
    measure: 'double(active_users("30d"))'
    weight: 100
    thresholds: [{min: 0, points: 0}, {min: 2, points: 100}]
`

func TestModels(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	admin, read := e.clients["admin"], e.clients["read"]

	def, err := read.GetModel(ctx, &healthv1.GetModelRequest{})
	if err != nil || !def.GetActive() || def.GetModel().GetId() != "default" || !strings.Contains(def.GetYaml(), "usage_breadth") {
		t.Fatalf("default model: %v %v", def, err)
	}
	// A model stored under "default" but not activated is what GetModel
	// returns for that id; the active model stays the built-in one.
	if _, err := admin.ApplyModel(ctx, &healthv1.ApplyModelRequest{Yaml: strings.Replace(validYAML, "id: simple", "id: default", 1)}); err != nil {
		t.Fatal(err)
	}
	stored, err := read.GetModel(ctx, &healthv1.GetModelRequest{ModelId: "default"})
	if err != nil || stored.GetModel().GetVersion() != 1 || stored.GetActive() {
		t.Fatalf("stored default: %v %v", stored, err)
	}
	if act, err := read.GetModel(ctx, &healthv1.GetModelRequest{}); err != nil || act.GetModel().GetVersion() != 0 || !act.GetActive() {
		t.Fatalf("active after storing: %v %v", act, err)
	}
	v, err := read.ValidateModel(ctx, &healthv1.ValidateModelRequest{Yaml: strings.Replace(validYAML, "weight: 100", "weight: 90", 1)})
	if err != nil || v.GetValid() || v.GetErrors()[0].GetPath() != "components" {
		t.Fatalf("validate: %v %v", v, err)
	}
	bad := strings.Replace(validYAML, `double(active_users("30d"))`, `active_users(30)`, 1)
	_, err = admin.ApplyModel(ctx, &healthv1.ApplyModelRequest{Yaml: bad})
	if code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "components[breadth].measure: ") {
		t.Fatalf("apply invalid: %v", err)
	}
	if _, err := read.ApplyModel(ctx, &healthv1.ApplyModelRequest{Yaml: validYAML}); code(err) != codes.PermissionDenied {
		t.Fatalf("read key applied a model: %v", err)
	}
	for i := 1; i <= 3; i++ {
		// Each version differs (its second threshold); the same model
		// again stores nothing and says so.
		yml := strings.Replace(validYAML, "{min: 2, points: 100}", fmt.Sprintf("{min: %d, points: 100}", i+1), 1)
		r, err := admin.ApplyModel(ctx, &healthv1.ApplyModelRequest{Yaml: yml, Activate: i == 2})
		if err != nil || r.GetModel().GetVersion() != uint32(i) || r.GetUnchanged() || r.GetActive() != (i == 2) {
			t.Fatalf("apply %d: %v %v", i, r, err)
		}
		again, err := admin.ApplyModel(ctx, &healthv1.ApplyModelRequest{Yaml: yml})
		if err != nil || again.GetModel().GetVersion() != uint32(i) || !again.GetUnchanged() || again.GetActive() != (i == 2) {
			t.Fatalf("apply %d again: %v %v", i, again, err)
		}
	}
	got, err := read.GetModel(ctx, &healthv1.GetModelRequest{})
	if err != nil || got.GetModel().GetId() != "simple" || got.GetModel().GetVersion() != 2 || !got.GetActive() {
		t.Fatalf("active model: %v %v", got, err)
	}
	l1, err := read.ListModelVersions(ctx, &healthv1.ListModelVersionsRequest{ModelId: "simple", Page: &commonv1.PageRequest{PageSize: 2}})
	if err != nil || len(l1.GetModels()) != 2 || l1.GetModels()[0].GetVersion() != 3 || l1.GetActiveVersion() != 2 {
		t.Fatalf("versions: %v %v", l1, err)
	}
	l2, err := read.ListModelVersions(ctx, &healthv1.ListModelVersionsRequest{ModelId: "simple", Page: &commonv1.PageRequest{PageSize: 2, PageToken: l1.GetPage().GetNextPageToken()}})
	if err != nil || len(l2.GetModels()) != 1 || l2.GetModels()[0].GetVersion() != 1 || l2.GetPage().GetNextPageToken() != "" {
		t.Fatalf("versions page 2: %v %v", l2, err)
	}
	if _, err := read.GetModel(ctx, &healthv1.GetModelRequest{ModelId: "simple", Version: 9}); code(err) != codes.NotFound {
		t.Fatalf("missing version: %v", err)
	}
}

func TestSubscribe(t *testing.T) {
	e := setup(t)
	e.seed(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := e.clients["admin"].Subscribe(ctx, &healthv1.SubscribeRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if code(err) != codes.PermissionDenied {
		t.Fatalf("admin subscribed: %v", err)
	}
	total := 0
	for p := uint32(0); p < e.log.Partitions(); p++ {
		head := e.log.Head(p)
		if head == 0 {
			continue // an empty partition would only tail
		}
		st, err := e.clients["svc"].Subscribe(ctx, &healthv1.SubscribeRequest{Partition: p, FromOffset: 1})
		if err != nil {
			t.Fatal(err)
		}
		var last uint64
		for last < head {
			r, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range r.GetRecords() {
				if rec.GetOffset() != last+1 || rec.GetPartition() != p || rec.GetKind() == nil {
					t.Fatalf("partition %d: record %d after %d (partition %d)", p, rec.GetOffset(), last, rec.GetPartition())
				}
				last = rec.GetOffset()
				total++
			}
		}
	}
	if total == 0 {
		t.Fatal("no records on any partition")
	}
	st, err = e.clients["svc"].Subscribe(ctx, &healthv1.SubscribeRequest{Partition: 9})
	if err == nil {
		_, err = st.Recv()
	}
	if code(err) != codes.InvalidArgument {
		t.Fatalf("bad partition: %v", err)
	}
}
