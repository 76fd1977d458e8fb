package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/ingestion/internal/app"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// Tokens of the test keyring.
const (
	writeKey   = "write-w"
	readKey    = "read-w"
	adminKey   = "admin-w"
	serviceKey = "service"
	otherKey   = "admin-other"
)

type fixture struct {
	srv     *server.Server
	app     *app.App
	clk     *clock.Manual
	clients map[string]ingestionv1.IngestionServiceClient
}

// defaultOptions are the app options of start.
func defaultOptions() app.Options {
	return app.Options{Partitions: 4, DedupWindow: 7 * 24 * time.Hour}
}

func start(t testing.TB, cfg server.Config) *fixture {
	t.Helper()
	return startWith(t, cfg, defaultOptions())
}

// startWith is start with explicit app options; the fixture's manual clock
// replaces opts.Clock.
func startWith(t testing.TB, cfg server.Config, opts app.Options) *fixture {
	t.Helper()
	clk := clock.NewManual(t0)
	opts.Clock = clk
	a, err := app.New(storetest.Open(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits == (validate.Limits{}) {
		cfg.Limits = validate.DefaultLimits()
	}
	cfg.Clock = clk
	cfg.Registerer = prometheus.NewRegistry()
	srv, err := server.New(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys := auth.StaticKeys{
		writeKey:   {KeyID: "k1", Workspace: "w", Role: auth.RoleWrite},
		readKey:    {KeyID: "k2", Workspace: "w", Role: auth.RoleRead},
		adminKey:   {KeyID: "k3", Workspace: "w", Role: auth.RoleAdmin},
		serviceKey: {KeyID: "k4", Role: auth.RoleService},
		otherKey:   {KeyID: "k5", Workspace: "other", Role: auth.RoleAdmin},
	}
	// As pkg/server chains them: authentication, then the one mapping of
	// handler errors to a status (apierr.Status).
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(keys, server.Policy()), apierr.UnaryServerInterceptor(slog.Default())),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, server.Policy()), apierr.StreamServerInterceptor(slog.Default())),
	)
	ingestionv1.RegisterIngestionServiceServer(gs, srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	f := &fixture{srv: srv, app: a, clk: clk, clients: map[string]ingestionv1.IngestionServiceClient{}}
	for _, tok := range []string{writeKey, readKey, adminKey, serviceKey, otherKey} {
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(auth.Bearer(tok)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		f.clients[tok] = ingestionv1.NewIngestionServiceClient(conn)
	}
	t.Cleanup(gs.Stop)
	return f
}

func track(id, user, account, name string, props map[string]any) *ingestionv1.Event {
	e := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: id, UserId: user, Event: name}
	if account != "" {
		e.Context, _ = structpb.NewStruct(map[string]any{"groupId": account})
	}
	if props != nil {
		e.Properties, _ = structpb.NewStruct(props)
	}
	return e
}

func TestIngestResults(t *testing.T) {
	f := start(t, server.Config{})
	ctx := context.Background()
	c := f.clients[writeKey]
	if _, err := c.Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track("seen", "u", "acme", "x", nil)}}); err != nil {
		t.Fatal(err)
	}
	future := track("future", "u", "acme", "x", nil)
	future.OriginalTimestamp = timestamppb.New(t0.Add(time.Hour))
	resp, err := c.Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
		track("ok", "u", "acme", "report_created", nil),
		track("bad-seats", "u", "acme", "billing.contract_updated", map[string]any{"plan": "pro", "seats": 0, "arr": 1,
			"contract_start": "2026-01-01T00:00:00Z", "contract_end": "2027-01-01T00:00:00Z"}),
		track("seen", "u", "acme", "x", nil),
		track("", "u", "acme", "no_id", nil),
		{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: "no-user", Event: "x"},
		track("ok", "u", "acme", "again_in_batch", nil),
		future,
		{Workspace: "other", Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", MessageId: "ws"},
		track(strings.Repeat("m", 101), "u", "", "x", nil),
	}})
	if err != nil {
		t.Fatalf("Ingest() = %v", err)
	}
	want := []struct {
		status ingestionv1.EventStatus
		field  string
	}{
		{ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ""},
		{ingestionv1.EventStatus_EVENT_STATUS_REJECTED, "events[1].properties.seats"},
		{ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE, ""},
		{ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ""},
		{ingestionv1.EventStatus_EVENT_STATUS_REJECTED, "events[4].user_id"},
		{ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE, ""},
		{ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ""},
		{ingestionv1.EventStatus_EVENT_STATUS_REJECTED, "events[7].workspace"},
		{ingestionv1.EventStatus_EVENT_STATUS_REJECTED, "events[8].message_id"},
	}
	if len(resp.GetResults()) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.GetResults()), len(want))
	}
	for i, w := range want {
		r := resp.GetResults()[i]
		if r.GetIndex() != int32(i) || r.GetStatus() != w.status || r.GetField() != w.field {
			t.Errorf("results[%d] = %v, want status %v field %q", i, r, w.status, w.field)
		}
		if w.status == ingestionv1.EventStatus_EVENT_STATUS_REJECTED && r.GetReason() == "" {
			t.Errorf("results[%d] rejected without a reason", i)
		}
		if (w.status == ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED) != (r.GetPosition() != nil) {
			t.Errorf("results[%d] position = %v", i, r.GetPosition())
		}
	}
	if id := resp.GetResults()[3].GetMessageId(); !strings.HasPrefix(id, "cairn-") {
		t.Errorf("generated message id = %q", id)
	}
	if f := resp.GetResults()[6].GetFlags(); len(f) != 1 || f[0] != validate.FlagFutureTimestamp {
		t.Errorf("future event flags = %v", f)
	}
	if resp.GetAccepted() != 3 || resp.GetDuplicates() != 2 || resp.GetRejected() != 4 {
		t.Errorf("counts = %d/%d/%d, want 3/2/4", resp.GetAccepted(), resp.GetDuplicates(), resp.GetRejected())
	}
	// The first batch accepted one event too.
	events, rejects, batch := f.srv.Metrics()
	for label, want := range map[string]float64{"accepted": 4, "duplicate": 2, "rejected": 4} {
		if got := testutil.ToFloat64(events.WithLabelValues(label)); got != want {
			t.Errorf("cairn_ingest_events_total{status=%q} = %v, want %v", label, got, want)
		}
	}
	for label, want := range map[string]float64{"properties": 1, "user_id": 1, "workspace": 1, "message_id": 1} {
		if got := testutil.ToFloat64(rejects.WithLabelValues(label)); got != want {
			t.Errorf("cairn_ingest_rejects_total{reason=%q} = %v, want %v", label, got, want)
		}
	}
	if n := testutil.CollectAndCount(batch); n != 1 {
		t.Errorf("cairn_ingest_batch_seconds series = %d", n)
	}
}

func TestIngestBatchLimits(t *testing.T) {
	lim := validate.DefaultLimits()
	lim.MaxBatchEvents = 2
	f := start(t, server.Config{Limits: lim})
	_, err := f.clients[writeKey].Ingest(context.Background(), &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
		track("a", "u", "", "x", nil), track("b", "u", "", "x", nil), track("c", "u", "", "x", nil)}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "events: 3 events") {
		t.Errorf("Ingest(3 events) = %v, want InvalidArgument on events", err)
	}
}

// passWait lets a batch that waits for room in the in-flight budget give
// up: once it waits on the fixture's clock, the clock moves past the wait.
func passWait(t *testing.T, f *fixture) {
	t.Helper()
	for i := 0; f.clk.Waiters() == 0; i++ {
		if i > 10_000_000 {
			t.Fatal("no batch waits for room")
		}
		runtime.Gosched()
	}
	f.clk.Advance(100 * time.Millisecond) // app.Options.AdmitWait's default
}

func TestBackpressure(t *testing.T) {
	opts := defaultOptions()
	opts.MaxInflightBytes = 10
	f := startWith(t, server.Config{}, opts)
	// Another caller's batch is being processed.
	busy, err := f.app.Admit(context.Background(), "another key", 5)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := f.clients[writeKey].Ingest(context.Background(), &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track("a", "u", "", "x", nil)}})
		got <- err
	}()
	passWait(t, f)
	err = <-got
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("Ingest() = %v, want ResourceExhausted", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	// Nothing has been held for any time yet on the manual clock, so the
	// backlog drains at once and the delay is the floor.
	if retry == nil || retry.GetRetryDelay().AsDuration() != admit.MinRetry {
		t.Errorf("details = %v, want RetryInfo of %s", st.Details(), admit.MinRetry)
	}
	busy.Release()
	if _, err := f.clients[writeKey].Ingest(context.Background(), &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track("a", "u", "", "x", nil)}}); err != nil {
		t.Errorf("Ingest() alone over the budget = %v, want admitted", err)
	}
	if n := f.app.Inflight(); n != 0 {
		t.Errorf("inflight = %d after the calls, want 0", n)
	}
}

func TestIngestStream(t *testing.T) {
	f := start(t, server.Config{StreamWindow: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := f.clients[writeKey].IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		req := &ingestionv1.IngestStreamRequest{Sequence: uint64(100 + i), Batch: &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
			track(fmt.Sprint("s", i), "u", "acme", "x", nil), track(fmt.Sprint("s", i/2), "u", "acme", "x", nil)}}}
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := range n {
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv() %d = %v", i, err)
		}
		if resp.GetSequence() != uint64(100+i) {
			t.Errorf("response %d has sequence %d, want %d", i, resp.GetSequence(), 100+i)
		}
		accepted += int(resp.GetResult().GetAccepted())
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv() after the last answer = %v, want EOF", err)
	}
	if accepted != n {
		t.Errorf("accepted %d distinct ids, want %d", accepted, n)
	}
}

// TestIngestStreamBatchErrors checks that a batch refused as a whole is
// answered with its error under its own sequence, and that the stream and
// the batches around it carry on.
func TestIngestStreamBatchErrors(t *testing.T) {
	lim := validate.DefaultLimits()
	lim.MaxBatchEvents = 1
	opts := defaultOptions()
	opts.MaxInflightBytes = 1 << 20
	f := startWith(t, server.Config{Limits: lim}, opts)
	one := func(id string) *ingestionv1.IngestRequest {
		return &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track(id, "u", "acme", "x", nil)}}
	}
	tests := []struct {
		name      string
		batch     *ingestionv1.IngestRequest
		busy      bool // the in-flight budget is spent by another caller
		wantCode  codes.Code
		wantMsg   string
		wantRetry time.Duration
	}{
		{name: "accepted", batch: one("a")},
		{name: "over the batch limit", batch: &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
			track("b", "u", "", "x", nil), track("c", "u", "", "x", nil)}}, wantCode: codes.InvalidArgument, wantMsg: "events: 2 events"},
		{name: "accepted after a refused batch", batch: one("d")},
		{name: "throttled", batch: one("e"), busy: true, wantCode: codes.ResourceExhausted, wantRetry: admit.MinRetry},
		{name: "resent after throttling", batch: one("e")},
		{name: "other workspace", batch: &ingestionv1.IngestRequest{Workspace: "other", Events: one("f").Events}, wantCode: codes.PermissionDenied},
	}
	s, err := f.clients[writeKey].IngestStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.busy {
				busy, err := f.app.Admit(context.Background(), "another key", 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				defer busy.Release()
			}
			if err := s.Send(&ingestionv1.IngestStreamRequest{Sequence: uint64(i), Batch: tt.batch}); err != nil {
				t.Fatal(err)
			}
			if tt.busy {
				passWait(t, f)
			}
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("Recv() = %v, want an answer and the stream open", err)
			}
			if resp.GetSequence() != uint64(i) {
				t.Errorf("sequence = %d, want %d", resp.GetSequence(), i)
			}
			be := resp.GetError()
			if codes.Code(be.GetCode()) != tt.wantCode || !strings.Contains(be.GetMessage(), tt.wantMsg) {
				t.Errorf("error = %v, want code %v with %q", be, tt.wantCode, tt.wantMsg)
			}
			if got := be.GetRetryDelay().AsDuration(); got != tt.wantRetry {
				t.Errorf("retry delay = %v, want %v", got, tt.wantRetry)
			}
			if tt.wantCode == codes.OK && resp.GetResult().GetAccepted() != 1 {
				t.Errorf("result = %v, want 1 accepted", resp.GetResult())
			}
			if tt.wantCode != codes.OK && resp.GetResult() != nil {
				t.Errorf("result = %v alongside an error", resp.GetResult())
			}
		})
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv() after the last answer = %v, want EOF", err)
	}
}

func TestSubscribe(t *testing.T) {
	f := start(t, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
		track("a", "u", "acme", "x", nil), track("b", "u", "acme", "y", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetResults()[0].GetPosition().GetPartition()
	sub, err := f.clients[serviceKey].Subscribe(ctx, &ingestionv1.SubscribeRequest{Partition: p})
	if err != nil {
		t.Fatal(err)
	}
	var got []*ingestionv1.LogRecord
	for len(got) < 3 {
		r, err := sub.Recv()
		if err != nil {
			t.Fatalf("Recv() = %v", err)
		}
		got = append(got, r.GetRecords()...)
		if len(got) == 2 {
			// Tail: a live append reaches the open stream.
			if _, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track("c", "u", "acme", "z", nil)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, id := range []string{"a", "b", "c"} {
		if got[i].GetEvent().GetMessageId() != id || got[i].GetOffset() != uint64(i+1) || got[i].GetPartition() != p {
			t.Errorf("record %d = %v", i, got[i])
		}
	}
	if got[0].GetEvent().GetAccountId() != "acme" || got[0].GetEvent().GetWorkspace() != "w" {
		t.Errorf("record lacks account/workspace: %v", got[0].GetEvent())
	}

	tests := []struct {
		name string
		key  string
		req  *ingestionv1.SubscribeRequest
		want codes.Code
	}{
		{"write key refused", writeKey, &ingestionv1.SubscribeRequest{}, codes.PermissionDenied},
		{"partition out of range", serviceKey, &ingestionv1.SubscribeRequest{Partition: 4}, codes.InvalidArgument},
		{"beyond head", serviceKey, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: 100}, codes.OutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := f.clients[tc.key].Subscribe(ctx, tc.req)
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != tc.want {
				t.Errorf("Subscribe() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestListAccountEvents(t *testing.T) {
	f := start(t, server.Config{})
	ctx := context.Background()
	for i := range 5 {
		name := "x"
		if i%2 == 0 {
			name = "crm.mql"
		}
		if _, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track(fmt.Sprint("m", i), "u", "acme", name, nil)}}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
	}
	var ids []string
	req := &ingestionv1.ListAccountEventsRequest{AccountId: "acme", Source: "crm", Page: &commonv1.PageRequest{PageSize: 2}}
	for range 5 {
		resp, err := f.clients[readKey].ListAccountEvents(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEvents() {
			ids = append(ids, e.GetMessageId())
		}
		if resp.GetPage().GetNextPageToken() == "" {
			break
		}
		req.Page.PageToken = resp.GetPage().GetNextPageToken()
	}
	if fmt.Sprint(ids) != "[m4 m2 m0]" {
		t.Errorf("crm events newest first = %v, want [m4 m2 m0]", ids)
	}

	tests := []struct {
		name string
		key  string
		req  *ingestionv1.ListAccountEventsRequest
		want codes.Code
		msg  string
	}{
		{"missing account", readKey, &ingestionv1.ListAccountEventsRequest{}, codes.InvalidArgument, "account_id"},
		{"garbage token", readKey, &ingestionv1.ListAccountEventsRequest{AccountId: "a", Page: &commonv1.PageRequest{PageToken: "!!"}}, codes.InvalidArgument, "page.page_token"},
		{"inverted window", readKey, &ingestionv1.ListAccountEventsRequest{AccountId: "a", Window: &commonv1.TimeWindow{
			Start: timestamppb.New(t0), End: timestamppb.New(t0.Add(-time.Hour))}}, codes.InvalidArgument, "window.end"},
		{"other workspace", readKey, &ingestionv1.ListAccountEventsRequest{Workspace: "other", AccountId: "acme"}, codes.PermissionDenied, ""},
		{"write key cannot read", writeKey, &ingestionv1.ListAccountEventsRequest{AccountId: "acme"}, codes.PermissionDenied, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.clients[tc.key].ListAccountEvents(ctx, tc.req)
			if status.Code(err) != tc.want || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Errorf("ListAccountEvents() = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	// Another workspace's admin sees nothing of w's account.
	resp, err := f.clients[otherKey].ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: "acme"})
	if err != nil || len(resp.GetEvents()) != 0 {
		t.Errorf("other workspace listing = %v, %v; want empty", resp, err)
	}
}

func TestDeleteSubjectRPC(t *testing.T) {
	f := start(t, server.Config{})
	ctx := context.Background()
	if _, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
		track("a", "u1", "acme", "x", nil), track("b", "u2", "acme", "x", nil)}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		key         string
		req         *ingestionv1.DeleteSubjectRequest
		want        codes.Code
		wantDeleted int64
	}{
		{"read key refused", readKey, &ingestionv1.DeleteSubjectRequest{UserId: "u1"}, codes.PermissionDenied, 0},
		{"neither subject", adminKey, &ingestionv1.DeleteSubjectRequest{}, codes.InvalidArgument, 0},
		{"both subjects", adminKey, &ingestionv1.DeleteSubjectRequest{UserId: "u1", AccountId: "acme"}, codes.InvalidArgument, 0},
		{"other workspace admin deletes nothing of w", otherKey, &ingestionv1.DeleteSubjectRequest{UserId: "u1"}, codes.OK, 0},
		{"user", adminKey, &ingestionv1.DeleteSubjectRequest{UserId: "u1"}, codes.OK, 1},
		{"account", adminKey, &ingestionv1.DeleteSubjectRequest{AccountId: "acme"}, codes.OK, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.clients[tc.key].DeleteSubject(ctx, tc.req)
			if status.Code(err) != tc.want {
				t.Fatalf("DeleteSubject() = %v, want %v", err, tc.want)
			}
			if err == nil && (resp.GetEventsDeleted() != tc.wantDeleted || resp.GetTombstone() == nil) {
				t.Errorf("DeleteSubject() = %v, want %d deleted and a tombstone", resp, tc.wantDeleted)
			}
		})
	}
}

func TestGetLogInfo(t *testing.T) {
	f := start(t, server.Config{})
	ctx := context.Background()
	resp, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track("a", "u", "acme", "x", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	pos := resp.GetResults()[0].GetPosition()
	info, err := f.clients[readKey].GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.GetPartitions()) != 4 || info.GetDedupWindowSeconds() != 7*24*3600 || info.GetRetentionSeconds() != 0 {
		t.Fatalf("GetLogInfo() = %v", info)
	}
	for _, p := range info.GetPartitions() {
		want := uint64(0)
		if p.GetPartition() == pos.GetPartition() {
			want = 1
		}
		if p.GetLastOffset() != want {
			t.Errorf("partition %d last offset = %d, want %d", p.GetPartition(), p.GetLastOffset(), want)
		}
	}
}

func TestRejectReason(t *testing.T) {
	tests := []struct{ field, want string }{
		{"", "size"}, {"user_id", "user_id"}, {"properties.seats", "properties"}, {"properties.l[1]", "properties"},
	}
	for _, tc := range tests {
		if got := server.RejectReason(tc.field); got != tc.want {
			t.Errorf("rejectReason(%q) = %q, want %q", tc.field, got, tc.want)
		}
	}
}

func TestSubscribeBehindRetention(t *testing.T) {
	f := startWith(t, server.Config{}, app.Options{Partitions: 1, DedupWindow: time.Hour, Retention: time.Hour})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track(id, "u", "acme", "x", nil)}}); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.Advance(2 * time.Hour)
	if _, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track("c", "u", "acme", "x", nil)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.app.Log().ApplyRetention(ctx, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		from    uint64
		want    codes.Code
		wantMsg string
		first   uint64
	}{
		{name: "cursor behind retention", from: 1, want: codes.OutOfRange, wantMsg: "retention"},
		{name: "from the beginning means oldest retained", from: 0, want: codes.OK, first: 3},
		{name: "at the first retained offset", from: 3, want: codes.OK, first: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			s, err := f.clients[serviceKey].Subscribe(sctx, &ingestionv1.SubscribeRequest{FromOffset: tc.from})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.Recv()
			if status.Code(err) != tc.want || !strings.Contains(status.Convert(err).Message(), tc.wantMsg) {
				t.Fatalf("Recv() = %v, want %v mentioning %q", err, tc.want, tc.wantMsg)
			}
			if err == nil && resp.GetRecords()[0].GetOffset() != tc.first {
				t.Errorf("first record offset = %d, want %d", resp.GetRecords()[0].GetOffset(), tc.first)
			}
		})
	}
	info, err := f.clients[readKey].GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if p := info.GetPartitions()[0]; p.GetFirstOffset() != 3 || p.GetLastOffset() != 3 || info.GetRetentionSeconds() != 3600 {
		t.Errorf("GetLogInfo() = %v", info)
	}
}
