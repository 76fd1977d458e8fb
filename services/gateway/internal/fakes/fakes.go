// Package fakes provides hand-written gRPC fakes of Cairn's four services,
// served on a real loopback listener, for the gateway's handler tests and
// benchmarks.
package fakes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Calls records the metadata and requests the fakes received.
type Calls struct {
	mu       sync.Mutex
	md       []metadata.MD
	requests []any
}

func (c *Calls) record(ctx context.Context, req any) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.md = append(c.md, md)
	c.requests = append(c.requests, req)
}

// Last returns the metadata and request of the latest call.
func (c *Calls) Last() (metadata.MD, any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.md) == 0 {
		return nil, nil
	}
	return c.md[len(c.md)-1], c.requests[len(c.requests)-1]
}

// Count returns how many calls were recorded.
func (c *Calls) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.md)
}

// Ingestion accepts events, except that event "bad_event" is rejected on its
// "event" field, message id "dup" is a duplicate, and the key "tok-busy"
// gets ResourceExhausted with a 3 s RetryInfo.
type Ingestion struct {
	ingestionv1.UnimplementedIngestionServiceServer
	// Calls records what was received.
	Calls Calls
}

// Ingest implements IngestionService.Ingest.
func (f *Ingestion) Ingest(ctx context.Context, req *ingestionv1.IngestRequest) (*ingestionv1.IngestResponse, error) {
	f.Calls.record(ctx, req)
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 && v[0] == "Bearer tok-busy" {
		st, _ := status.New(codes.ResourceExhausted, "ingest queue full").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
		return nil, st.Err()
	}
	resp := &ingestionv1.IngestResponse{}
	for i, ev := range req.GetEvents() {
		r := &ingestionv1.EventResult{Index: int32(i), MessageId: ev.GetMessageId()}
		switch {
		case ev.GetEvent() == "bad_event":
			r.Status, r.Field, r.Reason = ingestionv1.EventStatus_EVENT_STATUS_REJECTED, fmt.Sprintf("events[%d].event", i), "reserved event name"
			resp.Rejected++
		case ev.GetMessageId() == "dup":
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE
			resp.Duplicates++
		default:
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED
			r.Position = &commonv1.LogPosition{Partition: 0, Offset: uint64(i + 1)}
			resp.Accepted++
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// Stages answers GetAccountJourney: account "acme" is in onboarding,
// "missing" is NotFound, "bad!" is InvalidArgument naming account_id, "boom"
// is an Internal error whose message must never reach clients, and "slow"
// is ResourceExhausted with a 2 s RetryInfo.
type Stages struct {
	stagesv1.UnimplementedStagesServiceServer
	// Calls records what was received.
	Calls Calls
	// Status is what GetStatus answers (Status.Set); caught up until set.
	Status StatusAnswer
}

// SecretDetail is part of the Internal error message the gateway must hide.
const SecretDetail = "open /var/lib/cairn/stages.db: disk on fire"

// GetAccountJourney implements StagesService.GetAccountJourney.
func (f *Stages) GetAccountJourney(ctx context.Context, req *stagesv1.GetAccountJourneyRequest) (*stagesv1.GetAccountJourneyResponse, error) {
	f.Calls.record(ctx, req)
	switch req.GetAccountId() {
	case "missing":
		return nil, status.Error(codes.NotFound, `account "missing" not found`)
	case "bad!":
		return nil, status.Error(codes.InvalidArgument, "account_id: must match [A-Za-z0-9_.-]+")
	case "boom":
		return nil, status.Error(codes.Internal, SecretDetail)
	case "slow":
		st, _ := status.New(codes.ResourceExhausted, "too many reads").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)})
		return nil, st.Err()
	}
	return &stagesv1.GetAccountJourneyResponse{Journey: &stagesv1.AccountJourney{
		Workspace: "ws1", AccountId: req.GetAccountId(), JourneyId: "b2b", Stage: "onboarding",
		EnteredAt: timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
	}}, nil
}

// GetFunnel implements StagesService.GetFunnel with two stages.
func (f *Stages) GetFunnel(ctx context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	f.Calls.record(ctx, req)
	return &stagesv1.GetFunnelResponse{Accounts: 30, Stages: []*stagesv1.FunnelStage{
		{Stage: "onboarding", Name: "Onboarding", Current: 10, Entered: 30, Converted: 20, ConversionRate: 0.667},
		{Stage: "adoption", Name: "Adoption", Current: 20, Entered: 20},
	}}, nil
}

// Health answers GetAccountHealth with a fixed score of 72.5.
type Health struct {
	healthv1.UnimplementedHealthServiceServer
	// Calls records what was received.
	Calls Calls
	// Status is what GetStatus answers (Status.Set); caught up until set.
	Status StatusAnswer
}

// GetAccountHealth implements HealthService.GetAccountHealth.
func (f *Health) GetAccountHealth(ctx context.Context, req *healthv1.GetAccountHealthRequest) (*healthv1.GetAccountHealthResponse, error) {
	f.Calls.record(ctx, req)
	return &healthv1.GetAccountHealthResponse{Health: &healthv1.AccountHealth{
		AccountId: req.GetAccountId(), Score: 72.5, Band: healthv1.Band_BAND_NEUTRAL,
	}}, nil
}

// Plays is a fake PlaysService: every method is unimplemented.
type Plays struct {
	playsv1.UnimplementedPlaysServiceServer
}

// Routing answers ListAssignments with one open assignment.
type Routing struct {
	routingv1.UnimplementedRoutingServiceServer
	// Calls records what was received.
	Calls Calls
	// Status is what GetStatus answers (Status.Set); caught up until set.
	Status StatusAnswer
}

// ListAssignments implements RoutingService.ListAssignments.
func (f *Routing) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	f.Calls.record(ctx, req)
	return &routingv1.ListAssignmentsResponse{Assignments: []*routingv1.Assignment{{
		AssignmentId: "as1", AccountId: "acme", OwnerId: "olivia", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN,
	}}}, nil
}

// Suite is the four fakes behind one loopback gRPC server.
type Suite struct {
	// Ingestion, Stages, Health and Routing are the fakes.
	Ingestion *Ingestion
	Stages    *Stages
	Health    *Health
	Routing   *Routing
	Plays     *Plays
	// Status is the gRPC health server, to flip readiness.
	Status *health.Server
	// Conn is a client connection to the server.
	Conn *grpc.ClientConn
	// Addr is the server's address.
	Addr string
}

// Start serves the fakes on 127.0.0.1:0 until the test ends.
func Start(tb testing.TB) *Suite {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	s := &Suite{Ingestion: &Ingestion{}, Stages: &Stages{}, Health: &Health{}, Routing: &Routing{}, Plays: &Plays{}, Status: health.NewServer()}
	srv := grpc.NewServer()
	ingestionv1.RegisterIngestionServiceServer(srv, s.Ingestion)
	stagesv1.RegisterStagesServiceServer(srv, s.Stages)
	healthv1.RegisterHealthServiceServer(srv, s.Health)
	routingv1.RegisterRoutingServiceServer(srv, s.Routing)
	playsv1.RegisterPlaysServiceServer(srv, s.Plays)
	healthpb.RegisterHealthServer(srv, s.Status)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("dial fakes: %v", err)
	}
	s.Conn, s.Addr = cc, ln.Addr().String()
	tb.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
		<-done
	})
	return s
}

// Fake keys understood by Keys.
const (
	// WriteKey may send events in workspace ws1.
	WriteKey = "tok-write"
	// ReadKey may only read in workspace ws1.
	ReadKey = "tok-read"
	// BusyKey is a write key whose ingest calls get ResourceExhausted.
	BusyKey = "tok-busy"
)

// Keys authenticates the fake keys above; any other token is unknown.
type Keys struct{}

// Authenticate implements web.Authenticator.
func (Keys) Authenticate(token string) (web.Key, error) {
	switch token {
	case WriteKey, BusyKey:
		return web.Key{ID: "id-" + token, Workspace: "ws1", CanWrite: true}, nil
	case ReadKey:
		return web.Key{ID: "id-" + token, Workspace: "ws1"}, nil
	}
	return web.Key{}, errors.New("unknown API key")
}

// GetStatus implements StagesService.GetStatus with f.Status.
func (f *Stages) GetStatus(ctx context.Context, req *stagesv1.GetStatusRequest) (*stagesv1.GetStatusResponse, error) {
	f.Calls.record(ctx, req)
	b, err := f.Status.answer()
	if err != nil {
		return nil, err
	}
	return &stagesv1.GetStatusResponse{Backlog: b}, nil
}

// GetStatus implements HealthService.GetStatus with f.Status.
func (f *Health) GetStatus(ctx context.Context, req *healthv1.GetStatusRequest) (*healthv1.GetStatusResponse, error) {
	f.Calls.record(ctx, req)
	b, err := f.Status.answer()
	if err != nil {
		return nil, err
	}
	return &healthv1.GetStatusResponse{Backlog: b}, nil
}

// GetStatus implements RoutingService.GetStatus with f.Status.
func (f *Routing) GetStatus(ctx context.Context, req *routingv1.GetStatusRequest) (*routingv1.GetStatusResponse, error) {
	f.Calls.record(ctx, req)
	b, err := f.Status.answer()
	if err != nil {
		return nil, err
	}
	return &routingv1.GetStatusResponse{Backlog: b}, nil
}

// StatusAnswer is what a fake's GetStatus answers: a backlog or an error,
// set while the fake serves.
type StatusAnswer struct {
	mu      sync.Mutex
	backlog *commonv1.Backlog
	err     error
}

// Set makes GetStatus answer b, or err when it is not nil.
func (a *StatusAnswer) Set(b *commonv1.Backlog, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.backlog, a.err = b, err
}

func (a *StatusAnswer) answer() (*commonv1.Backlog, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	if a.backlog == nil {
		return &commonv1.Backlog{CaughtUp: true}, nil
	}
	return a.backlog, nil
}
