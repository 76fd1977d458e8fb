package server_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/routing/internal/app"
	"github.com/cairn-dev/cairn/services/routing/internal/server"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness serves the routing API over bufconn, with the auth and status
// interceptors pkg/server installs, in front of a real application and
// store.
type harness struct {
	t      *testing.T
	clk    *clock.Manual
	svc    *app.Service
	db     *pstore.DB
	client routingv1.RoutingServiceClient
	// lags is what GetStatus reports; tests add consumers' lag to it.
	lags *pkgserver.Lags
}

// Tokens of the test keyring.
const (
	adminKey   = "admin-token"
	readKey    = "read-token"
	writeKey   = "write-token"
	otherKey   = "other-admin-token"
	serviceKey = "service-token"
)

var keys = auth.StaticKeys{
	adminKey:   {KeyID: "k1", Workspace: "ws", Role: auth.RoleAdmin},
	readKey:    {KeyID: "k2", Workspace: "ws", Role: auth.RoleRead},
	writeKey:   {KeyID: "k3", Workspace: "ws", Role: auth.RoleWrite},
	otherKey:   {KeyID: "k4", Workspace: "other", Role: auth.RoleAdmin},
	serviceKey: {KeyID: "k5", Role: auth.RoleService},
}

// newHarness opens a store in a temp dir and serves routing over it.
func newHarness(t *testing.T, now time.Time) *harness {
	t.Helper()
	db, err := store.OpenDB(filepath.Join(t.TempDir(), "routing.db"), pstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(now)
	log, err := stream.OpenLog(db, "routing", stream.LogOptions{Partitions: 4, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.New(app.Options{DB: db, Log: log, Partitions: 4, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(keys, server.Policy()), apierr.UnaryServerInterceptor(slog.Default())),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, server.Policy()), apierr.StreamServerInterceptor(slog.Default())),
	)
	lags := &pkgserver.Lags{}
	routingv1.RegisterRoutingServiceServer(gs, server.NewServer(svc, server.LogSubscriber(log), lags.Lag))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		wg.Wait()
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &harness{t: t, clk: clk, svc: svc, db: db, client: routingv1.NewRoutingServiceClient(conn), lags: lags}
}

// ctxWith returns a context carrying a bearer token.
func ctxWith(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// fire runs the timer loop body once at the current manual time.
func (h *harness) fire() int {
	h.t.Helper()
	n, err := h.svc.FireDue(context.Background())
	if err != nil {
		h.t.Fatalf("fire due timers: %v", err)
	}
	return n
}

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// ny is a local New York time on the week of Monday 2026-11-16.
func ny(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, newYork)
}

// setup loads two SDRs in a round-robin pool, a manager, and a config with
// policy, when not nil, as its SLA policy.
func (h *harness) setup(policy *routingv1.SlaPolicy) {
	h.t.Helper()
	ctx := ctxWith(adminKey)
	for _, o := range []*routingv1.Owner{
		{OwnerId: "alice", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", ManagerId: "maria", Capacity: 100},
		{OwnerId: "bob", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", ManagerId: "maria", Capacity: 100},
		{OwnerId: "maria", Team: routingv1.Team_TEAM_MANAGER, TimeZone: "America/New_York"},
	} {
		if _, err := h.client.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: o}); err != nil {
			h.t.Fatalf("upsert owner: %v", err)
		}
	}
	if _, err := h.client.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{PoolId: "sdr", OwnerIds: []string{"alice", "bob"}, Strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN}}); err != nil {
		h.t.Fatalf("upsert pool: %v", err)
	}
	cfg := &routingv1.Config{
		FallbackPoolId: "sdr",
		Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
	}
	if policy != nil {
		cfg.SlaPolicies = []*routingv1.SlaPolicy{policy}
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
		h.t.Fatalf("apply config: %v", err)
	}
}

func (h *harness) qualify(email string) *routingv1.Assignment {
	h.t.Helper()
	r, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: email, AccountId: "acct-" + email}})
	if err != nil {
		h.t.Fatalf("qualify: %v", err)
	}
	return r.GetAssignment()
}
