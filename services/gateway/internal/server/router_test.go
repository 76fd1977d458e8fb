package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// replicaConn is a fake replica: it records the methods it was called with
// and answers from its own account list.
type replicaConn struct {
	id       int
	accounts []string
	fail     error
	status   healthpb.HealthCheckResponse_ServingStatus

	mu    sync.Mutex
	calls []string
}

func (c *replicaConn) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	c.mu.Lock()
	c.calls = append(c.calls, method[strings.LastIndexByte(method, '/')+1:])
	c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	switch out := reply.(type) {
	case *stagesv1.GetAccountJourneyResponse:
		out.Journey = &stagesv1.AccountJourney{AccountId: args.(*stagesv1.GetAccountJourneyRequest).GetAccountId(), Stage: "replica-" + strconv.Itoa(c.id)}
	case *stagesv1.ApplyJourneyResponse:
		out.Active = true
	case *stagesv1.GetJourneyResponse:
	case *healthv1.RescoreResponse:
		out.Accounts, out.ElapsedMs = int64(len(c.accounts)), int64(10*(c.id+1))
	case *healthpb.HealthCheckResponse:
		out.Status = c.status
	case *stagesv1.GetStatusResponse:
		out.Backlog = c.backlog()
	case *healthv1.GetStatusResponse:
		out.Backlog = c.backlog()
	case *stagesv1.ListAccountsResponse:
		pr := args.(*stagesv1.ListAccountsRequest).GetPage()
		start := 0
		if t := pr.GetPageToken(); t != "" {
			start, _ = strconv.Atoi(t)
		}
		end := min(start+int(pr.GetPageSize()), len(c.accounts))
		for _, a := range c.accounts[start:end] {
			out.Accounts = append(out.Accounts, &stagesv1.AccountSummary{AccountId: a})
		}
		out.Page = &commonv1.PageResponse{}
		if end < len(c.accounts) {
			out.Page.NextPageToken = strconv.Itoa(end)
		}
	default:
		return fmt.Errorf("fake replica: unexpected reply %T", reply)
	}
	return nil
}

// backlog is the replica's GetStatus answer: one record behind on its own
// partition per account it holds.
func (c *replicaConn) backlog() *commonv1.Backlog {
	n := uint64(len(c.accounts))
	return &commonv1.Backlog{
		Consumers: []*commonv1.ConsumerLag{{Source: "ingestion", Partition: uint32(c.id), Cursor: 1, Head: 1 + n, Lag: n, HeadKnown: true}},
		Lag:       n, CaughtUp: n == 0,
	}
}

func (c *replicaConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("not used")
}

func (c *replicaConn) called() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// wsKeys authenticates every token as a key of workspace "w".
type wsKeys struct{}

func (wsKeys) Authenticate(string) (web.Key, error) { return web.Key{ID: "k", Workspace: "w"}, nil }

const routerParts = 8

func newTestRouter(t *testing.T, accounts ...[]string) (grpc.ClientConnInterface, []*replicaConn) {
	t.Helper()
	var (
		fakes []*replicaConn
		conns []grpc.ClientConnInterface
	)
	for i, acc := range accounts {
		f := &replicaConn{id: i, accounts: acc, status: healthpb.HealthCheckResponse_SERVING}
		fakes = append(fakes, f)
		conns = append(conns, f)
	}
	r, err := NewRouter(conns, routerParts, wsKeys{})
	if err != nil {
		t.Fatal(err)
	}
	return r, fakes
}

func TestNewRouter(t *testing.T) {
	one := &replicaConn{}
	if r, err := NewRouter([]grpc.ClientConnInterface{one}, routerParts, nil); err != nil || r != one {
		t.Fatalf("single replica: %v, %v; want the connection itself", r, err)
	}
	for name, tc := range map[string]struct {
		conns []grpc.ClientConnInterface
		parts uint32
		keys  web.Authenticator
	}{
		"no connections":            {nil, routerParts, wsKeys{}},
		"more replicas than parts":  {[]grpc.ClientConnInterface{one, one, one}, 2, wsKeys{}},
		"no authenticator for many": {[]grpc.ClientConnInterface{one, one}, routerParts, nil},
	} {
		if _, err := NewRouter(tc.conns, tc.parts, tc.keys); err == nil {
			t.Errorf("%s: NewRouter succeeded", name)
		}
	}
}

// TestRouterOwner checks that account calls reach the account's owner,
// with the workspace from the request or, when empty, from the caller's key.
func TestRouterOwner(t *testing.T) {
	r, fakes := newTestRouter(t, nil, nil)
	client := stagesv1.NewStagesServiceClient(r)
	keyed := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer tok")
	for i := range 20 {
		acct := fmt.Sprintf("acct-%02d", i)
		want := "replica-" + strconv.Itoa(stream.AccountReplica("w", acct, routerParts, 2))
		for name, call := range map[string]func() (*stagesv1.GetAccountJourneyResponse, error){
			"workspace in request": func() (*stagesv1.GetAccountJourneyResponse, error) {
				return client.GetAccountJourney(t.Context(), &stagesv1.GetAccountJourneyRequest{Workspace: "w", AccountId: acct})
			},
			"workspace of the key": func() (*stagesv1.GetAccountJourneyResponse, error) {
				return client.GetAccountJourney(keyed, &stagesv1.GetAccountJourneyRequest{AccountId: acct})
			},
		} {
			resp, err := call()
			if err != nil {
				t.Fatalf("%s %s: %v", name, acct, err)
			}
			if got := resp.GetJourney().GetStage(); got != want {
				t.Errorf("%s %s answered by %s, want %s", name, acct, got, want)
			}
		}
	}
	if len(fakes[0].called()) == 0 || len(fakes[1].called()) == 0 {
		t.Fatalf("20 accounts all went to one replica: %v / %v", fakes[0].called(), fakes[1].called())
	}
}

func TestRouterBroadcastAndAny(t *testing.T) {
	r, fakes := newTestRouter(t, []string{"a", "b", "c"}, []string{"d", "e"})
	if _, err := stagesv1.NewStagesServiceClient(r).ApplyJourney(t.Context(), &stagesv1.ApplyJourneyRequest{Yaml: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stagesv1.NewStagesServiceClient(r).GetJourney(t.Context(), &stagesv1.GetJourneyRequest{JourneyId: "j"}); err != nil {
		t.Fatal(err)
	}
	resc, err := healthv1.NewHealthServiceClient(r).Rescore(t.Context(), &healthv1.RescoreRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resc.GetAccounts() != 5 || resc.GetElapsedMs() != 20 {
		t.Errorf("Rescore = %v, want 5 accounts (summed) and 20 ms (slowest)", resc)
	}
	if got := fakes[0].called(); !slices.Equal(got, []string{"ApplyJourney", "GetJourney", "Rescore"}) {
		t.Errorf("replica 0 calls %v", got)
	}
	if got := fakes[1].called(); !slices.Equal(got, []string{"ApplyJourney", "Rescore"}) {
		t.Errorf("replica 1 calls %v", got)
	}

	fakes[0].fail = status.Error(codes.Unavailable, "restarting")
	if _, err := stagesv1.NewStagesServiceClient(r).GetJourney(t.Context(), &stagesv1.GetJourneyRequest{JourneyId: "j"}); err != nil {
		t.Errorf("GetJourney with replica 0 unavailable: %v, want replica 1's answer", err)
	}
	if got := fakes[1].called(); !slices.Equal(got, []string{"ApplyJourney", "Rescore", "GetJourney"}) {
		t.Errorf("replica 1 calls after the fallback %v", got)
	}
	fakes[0].fail = nil

	fakes[1].status = healthpb.HealthCheckResponse_NOT_SERVING
	hc, err := healthpb.NewHealthClient(r).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check with replica 1 not serving = %v, %v; want NOT_SERVING", hc, err)
	}

	fakes[1].fail = status.Error(codes.Unavailable, "down")
	_, err = stagesv1.NewStagesServiceClient(r).ApplyJourney(t.Context(), &stagesv1.ApplyJourneyRequest{Yaml: "x"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "replica 1 of 2: down") {
		t.Errorf("ApplyJourney with replica 1 down = %v, want Unavailable naming replica 1", err)
	}
}

// TestRouterConcat pages a list across replicas: every item once, pages
// filled across the replica boundary.
func TestRouterConcat(t *testing.T) {
	r, _ := newTestRouter(t, []string{"a", "b", "c"}, []string{"d", "e"}, nil)
	client := stagesv1.NewStagesServiceClient(r)
	for _, size := range []int32{1, 2, 3, 5, 50} {
		var (
			got   []string
			token string
			pages int
		)
		for {
			resp, err := client.ListAccounts(t.Context(), &stagesv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageSize: size, PageToken: token}})
			if err != nil {
				t.Fatalf("size %d page %d: %v", size, pages, err)
			}
			if len(resp.GetAccounts()) > int(size) {
				t.Fatalf("size %d: page of %d", size, len(resp.GetAccounts()))
			}
			for _, a := range resp.GetAccounts() {
				got = append(got, a.GetAccountId())
			}
			pages++
			if token = resp.GetPage().GetNextPageToken(); token == "" {
				break
			}
			if pages > 10 {
				t.Fatalf("size %d: no end after %d pages", size, pages)
			}
		}
		if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
			t.Errorf("size %d: listed %v, want %v", size, got, want)
		}
	}
	_, err := client.ListAccounts(t.Context(), &stagesv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageToken: "bogus!"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page.page_token") {
		t.Errorf("bad token: %v, want InvalidArgument naming page.page_token", err)
	}
	_, err = client.ListAccounts(t.Context(), &stagesv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageToken: encodeRouteToken(3, "")}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("token for replica 3 of 3: %v, want InvalidArgument", err)
	}
}

func TestRouterUnsupported(t *testing.T) {
	r, fakes := newTestRouter(t, nil, nil)
	var reply proto.Message = &stagesv1.GetFunnelResponse{}
	if err := r.Invoke(t.Context(), "/x/Y", &stagesv1.GetFunnelRequest{}, reply); status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "Y is not available") {
		t.Errorf("unknown method = %v, want Unimplemented", err)
	}
	if len(fakes[0].called())+len(fakes[1].called()) != 0 {
		t.Errorf("an unsupported call reached a replica")
	}
	if err := r.Invoke(t.Context(), "/x/Y", "not a message", reply); status.Code(err) != codes.Internal {
		t.Errorf("non-proto request: %v", err)
	}
}

// BenchmarkRouter measures what routing adds to a call (the fake replicas
// answer in memory): an account call with the workspace in the request, one
// that resolves the caller's key, and a page of a concatenated list.
//
//	cd services/gateway && go test -run '^$' -bench Router -benchtime 2s ./internal/server
func BenchmarkRouter(b *testing.B) {
	conns := []grpc.ClientConnInterface{
		&replicaConn{id: 0, accounts: []string{"a", "b", "c"}}, &replicaConn{id: 1, accounts: []string{"d", "e"}},
	}
	r, err := NewRouter(conns, routerParts, wsKeys{})
	if err != nil {
		b.Fatal(err)
	}
	client := stagesv1.NewStagesServiceClient(r)
	keyed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer tok")
	b.Run("owner", func(b *testing.B) {
		for b.Loop() {
			if _, err := client.GetAccountJourney(context.Background(), &stagesv1.GetAccountJourneyRequest{Workspace: "w", AccountId: "acct-1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("owner-by-key", func(b *testing.B) {
		for b.Loop() {
			if _, err := client.GetAccountJourney(keyed, &stagesv1.GetAccountJourneyRequest{AccountId: "acct-1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("concat", func(b *testing.B) {
		for b.Loop() {
			if _, err := client.ListAccounts(context.Background(), &stagesv1.ListAccountsRequest{Page: &commonv1.PageRequest{PageSize: 50}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRouteByTable checks how the Router sends each method of the services
// split by account, by pkg/methods' table: with and without an account in
// requests that can name one.
func TestRouteByTable(t *testing.T) {
	const (
		none  = methods.NotRouted
		owner = methods.ByAccount
		anyR  = methods.AnyReplica
		bcast = methods.Broadcast
		pages = methods.ConcatPages
		agg   = methods.Aggregate
	)
	// want[method] is the route without, then with, an account_id.
	want := map[string][2]methods.Route{
		"/cairn.stages.v1.StagesService/ValidateJourney":      {anyR, anyR},
		"/cairn.stages.v1.StagesService/ApplyJourney":         {bcast, bcast},
		"/cairn.stages.v1.StagesService/GetJourney":           {anyR, anyR},
		"/cairn.stages.v1.StagesService/ListJourneyVersions":  {anyR, anyR},
		"/cairn.stages.v1.StagesService/ListJourneyTemplates": {anyR, anyR},
		"/cairn.stages.v1.StagesService/ListJourneys":         {anyR, anyR},
		"/cairn.stages.v1.StagesService/StartReplay":          {agg, agg},
		"/cairn.stages.v1.StagesService/GetReplay":            {agg, agg},
		"/cairn.stages.v1.StagesService/ActivateJourney":      {bcast, bcast},
		"/cairn.stages.v1.StagesService/GetAccountJourney":    {none, owner},
		"/cairn.stages.v1.StagesService/ListAccounts":         {pages, pages},
		"/cairn.stages.v1.StagesService/ListSignals":          {pages, owner},
		"/cairn.stages.v1.StagesService/GetFunnel":            {agg, agg},
		"/cairn.stages.v1.StagesService/GetMomentsOfTruth":    {agg, agg},
		"/cairn.stages.v1.StagesService/GetBuyingCommittee":   {none, owner},
		"/cairn.stages.v1.StagesService/GetStatus":            {bcast, bcast},
		"/cairn.stages.v1.StagesService/Subscribe":            {none, none},
		"/cairn.health.v1.HealthService/ValidateModel":        {anyR, anyR},
		"/cairn.health.v1.HealthService/ApplyModel":           {bcast, bcast},
		"/cairn.health.v1.HealthService/GetModel":             {anyR, anyR},
		"/cairn.health.v1.HealthService/ListModelVersions":    {anyR, anyR},
		"/cairn.health.v1.HealthService/GetAccountHealth":     {none, owner},
		"/cairn.health.v1.HealthService/ListHealthHistory":    {none, owner},
		"/cairn.health.v1.HealthService/ListAccounts":         {pages, pages},
		"/cairn.health.v1.HealthService/ListSignals":          {pages, owner},
		"/cairn.health.v1.HealthService/Backtest":             {agg, agg},
		"/cairn.health.v1.HealthService/Rescore":              {bcast, bcast},
		"/cairn.health.v1.HealthService/GetStatus":            {bcast, bcast},
		"/cairn.health.v1.HealthService/Subscribe":            {none, none},
	}
	for _, sd := range []protoreflect.ServiceDescriptor{
		stagesv1.File_cairn_stages_v1_stages_proto.Services().Get(0), healthv1.File_cairn_health_v1_health_proto.Services().Get(0),
	} {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			name := "/" + string(sd.FullName()) + "/" + string(md.Name())
			w, ok := want[name]
			if !ok {
				t.Errorf("%s: no expected route", name)
				continue
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
			if err != nil {
				t.Fatal(err)
			}
			req := mt.New().Interface()
			if got := route(name, req); got != w[0] {
				t.Errorf("%s without an account: %v, want %v", name, got, w[0])
			}
			if f := md.Input().Fields().ByName("account_id"); f != nil {
				req.ProtoReflect().Set(f, protoreflect.ValueOfString("acme"))
			}
			if got := route(name, req); got != w[1] {
				t.Errorf("%s with an account: %v, want %v", name, got, w[1])
			}
		}
	}
	if got := route(methods.HealthCheck.Name, &healthpb.HealthCheckRequest{}); got != bcast {
		t.Errorf("health check: %v, want %v", got, bcast)
	}
	if got := route("/x/Y", &stagesv1.GetAccountJourneyRequest{AccountId: "acme"}); got != none {
		t.Errorf("a method no table lists: %v, want %v", got, none)
	}
}

// TestRouterCoversTheTables checks that the gateway has what pkg/methods'
// routes need: an aggregator for every aggregate, and aggregators and
// merges only for methods routed that way.
func TestRouterCoversTheTables(t *testing.T) {
	for _, tb := range methods.Tables() {
		for _, m := range tb.Methods {
			if has := aggregators[m.Name] != nil; has != (m.Route == methods.Aggregate) {
				t.Errorf("%s: routed %v, aggregator %v", m.Name, m.Route, has)
			}
		}
	}
	for name := range aggregators {
		if m, ok := methods.Lookup(name); !ok || m.Route != methods.Aggregate {
			t.Errorf("aggregator for %s, routed %v (listed %v)", name, m.Route, ok)
		}
	}
	for name := range merges {
		if m, ok := methods.Lookup(name); !ok || m.Route != methods.Broadcast {
			t.Errorf("merge for %s, routed %v (listed %v)", name, m.Route, ok)
		}
	}
}
