package admit

import (
	"context"
	"net"
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
	"google.golang.org/grpc/tap"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestBearerKey(t *testing.T) {
	key := BearerKey(auth.StaticKeys{"tok": {KeyID: "k1", Workspace: "w", Role: auth.RoleWrite}})
	tests := []struct {
		name string
		md   metadata.MD
		want string
	}{
		{name: "known key", md: metadata.Pairs("authorization", "Bearer tok"), want: "k1"},
		{name: "scheme in any case, spaces trimmed", md: metadata.Pairs("authorization", "bEARER  tok "), want: "k1"},
		{name: "unknown key", md: metadata.Pairs("authorization", "Bearer nope"), want: ""},
		{name: "no metadata", md: nil, want: ""},
		{name: "other scheme", md: metadata.Pairs("authorization", "Basic tok"), want: ""},
		{name: "two values", md: metadata.Pairs("authorization", "Bearer tok", "authorization", "Bearer tok"), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := key(tt.md); got != tt.want {
				t.Errorf("key = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTapHandle(t *testing.T) {
	c := New("streams", Limits{Requests: 2, KeyRequests: 1}, clock.NewManual(t0))
	tp := Tap{
		Class: func(m string) *Controller {
			if m == "/svc/Stream" {
				return c
			}
			return nil
		},
		Key: func(md metadata.MD) string { return md.Get("who")[0] },
	}
	open := func(method, who string) (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := tp.Handle(ctx, &tap.Info{FullMethodName: method, Header: metadata.Pairs("who", who)})
		if err != nil {
			cancel()
		}
		return cancel, err
	}
	tests := []struct {
		method, who string
		want        codes.Code
	}{
		{"/svc/Stream", "a", codes.OK},
		{"/svc/Stream", "a", codes.ResourceExhausted}, // a's one stream
		{"/svc/Stream", "b", codes.OK},
		{"/svc/Stream", "c", codes.ResourceExhausted}, // two overall
		{"/grpc.health.v1.Health/Check", "c", codes.OK},
	}
	var ends []context.CancelFunc
	for i, tt := range tests {
		end, err := open(tt.method, tt.who)
		if status.Code(err) != tt.want {
			t.Fatalf("call %d (%s by %s) = %v, want %s", i, tt.method, tt.who, err, tt.want)
		}
		if err == nil {
			ends = append(ends, end)
		}
	}
	if st := c.Stats(); st.Requests != 2 {
		t.Fatalf("streams held %d, want 2", st.Requests)
	}
	for _, end := range ends {
		end()
	}
	waitFor(t, "streams released when their contexts end", func() bool { return c.Stats().Requests == 0 })
}

// TestTapOnAServer checks the refusal a client sees: the stream is refused
// before its request is read, with ResourceExhausted and the RetryInfo.
func TestTapOnAServer(t *testing.T) {
	c := New("watchers", Limits{Requests: 1}, clock.NewManual(t0))
	tp := Tap{Class: func(m string) *Controller {
		if m == "/grpc.health.v1.Health/Watch" {
			return c
		}
		return nil
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(tp.ServerOption())
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // failure guard
	defer cancel()

	first, cancelFirst := context.WithCancel(ctx)
	w, err := hc.Watch(first, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatalf("first Watch: %v", err)
	}
	w2, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w2.Recv()
	}
	st := status.Convert(err)
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if st.Code() != codes.ResourceExhausted || retry == nil || retry.GetRetryDelay().AsDuration() < MinRetry {
		t.Fatalf("second Watch = %v (details %v), want ResourceExhausted with a RetryInfo", err, st.Details())
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("Check, not admitted by the tap, = %v", err)
	}
	cancelFirst()
	waitFor(t, "the first Watch's slot is released", func() bool { return c.Stats().Requests == 0 })
	w3, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w3.Recv()
	}
	if err != nil {
		t.Errorf("Watch after the first ended = %v", err)
	}
}
