package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// wsReplica is a fake replica of a service split by workspace: it records
// the workspace of each call it gets.
type wsReplica struct {
	got    []string
	status healthpb.HealthCheckResponse_ServingStatus
}

func (c *wsReplica) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	c.got = append(c.got, stringField(args.(proto.Message), "workspace"))
	if out, ok := reply.(*healthpb.HealthCheckResponse); ok {
		out.Status = c.status
	}
	return nil
}

func (c *wsReplica) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	c.got = append(c.got, "stream")
	return nil, nil
}

// tokenKeys authenticates a token as a key of the workspace it names; the
// token "svc" is a key without a workspace (a service key).
type tokenKeys struct{}

func (tokenKeys) Authenticate(tok string) (web.Key, error) {
	if tok == "svc" {
		return web.Key{ID: tok}, nil
	}
	return web.Key{ID: tok, Workspace: tok}, nil
}

// TestWorkspaceRouter checks that calls reach their workspace's replica,
// by the request's workspace or the key's, and that a health check asks
// every replica.
func TestWorkspaceRouter(t *testing.T) {
	one := &wsReplica{}
	if r, err := NewWorkspaceRouter([]grpc.ClientConnInterface{one}, nil); err != nil || r != one {
		t.Fatalf("single replica: %v, %v; want the connection itself", r, err)
	}
	if _, err := NewWorkspaceRouter([]grpc.ClientConnInterface{one, one}, nil); err == nil {
		t.Fatal("several replicas without an authenticator: no error")
	}
	const n = 3
	fakes := make([]*wsReplica, n)
	conns := make([]grpc.ClientConnInterface, n)
	for i := range fakes {
		fakes[i] = &wsReplica{status: healthpb.HealthCheckResponse_SERVING}
		conns[i] = fakes[i]
	}
	r, err := NewWorkspaceRouter(conns, tokenKeys{})
	if err != nil {
		t.Fatal(err)
	}
	c := ingestionv1.NewIngestionServiceClient(r)
	workspaces := []string{"acme", "globex", "initech", "umbrella", "hooli", "stark"}
	want := make([][]string, n)
	for _, ws := range workspaces {
		k := stream.WorkspaceReplica(ws, n)
		// By the key's workspace (the tracking API), then by the request's.
		keyed := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+ws)
		if _, err := c.Ingest(keyed, &ingestionv1.IngestRequest{}); err != nil {
			t.Fatal(err)
		}
		svc := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer svc")
		if _, err := c.ListAccountEvents(svc, &ingestionv1.ListAccountEventsRequest{Workspace: ws}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IngestStream(keyed); err != nil {
			t.Fatal(err)
		}
		want[k] = append(want[k], "", ws, "stream")
	}
	for k, f := range fakes {
		if len(f.got) != len(want[k]) {
			t.Fatalf("replica %d got %v, want %v", k, f.got, want[k])
		}
		for i := range want[k] {
			if f.got[i] != want[k][i] {
				t.Fatalf("replica %d got %v, want %v", k, f.got, want[k])
			}
		}
	}
	svc := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer svc")
	if _, err := c.IngestStream(svc); status.Code(err) != codes.Unimplemented {
		t.Errorf("stream with a key without workspace: %v, want Unimplemented", err)
	}

	fakes[2].status = healthpb.HealthCheckResponse_NOT_SERVING
	resp, err := healthpb.NewHealthClient(r).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health check = %v, %v; want NOT_SERVING from replica 2", resp, err)
	}
	for k, f := range fakes {
		if f.got[len(f.got)-1] != "" {
			t.Errorf("replica %d was not asked for its health", k)
		}
	}
}

// TestWorkspaceRouterRefusesUnrouted checks that methods pkg/methods does
// not route by workspace (the logs, methods of services split by account,
// unknown ones) reach no replica.
func TestWorkspaceRouterRefusesUnrouted(t *testing.T) {
	fakes := []*wsReplica{{}, {}}
	r, err := NewWorkspaceRouter([]grpc.ClientConnInterface{fakes[0], fakes[1]}, tokenKeys{})
	if err != nil {
		t.Fatal(err)
	}
	keyed := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer acme")
	if _, err := ingestionv1.NewIngestionServiceClient(r).Subscribe(keyed, &ingestionv1.SubscribeRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("Subscribe: %v, want Unimplemented", err)
	}
	for _, method := range []string{"/cairn.stages.v1.StagesService/GetFunnel", "/x/Y"} {
		if err := r.Invoke(keyed, method, &ingestionv1.IngestRequest{Workspace: "acme"}, &ingestionv1.IngestResponse{}); status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", method, err)
		}
	}
	for k, f := range fakes {
		if len(f.got) != 0 {
			t.Errorf("replica %d was called: %v", k, f.got)
		}
	}
}
