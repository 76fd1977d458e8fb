package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// A hand-written test service: each method echoes the workspace resolved by
// Workspace from the request's string value.
const testService = "cairn.test.v1.TestService"

func method(name string) string { return "/" + testService + "/" + name }

type echo struct{}

func (echo) resolve(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	ws, err := Workspace(ctx, req.GetValue())
	if err != nil {
		return nil, err
	}
	return wrapperspb.String(ws), nil
}

func unary(name string) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(wrapperspb.StringValue)
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, r any) (any, error) {
				return srv.(echo).resolve(ctx, r.(*wrapperspb.StringValue))
			}
			if in == nil {
				return h(ctx, req)
			}
			return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: method(name)}, h)
		},
	}
}

var testDesc = grpc.ServiceDesc{
	ServiceName: testService,
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{unary("Write"), unary("Read"), unary("Admin"), unary("Service"), unary("Any"), unary("Unlisted")},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Tail",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			req := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(req); err != nil {
				return err
			}
			resp, err := srv.(echo).resolve(stream.Context(), req)
			if err != nil {
				return err
			}
			return stream.SendMsg(resp)
		},
	}},
}

var testPolicy = Policy{
	method("Write"):   RoleWrite,
	method("Read"):    RoleRead,
	method("Admin"):   RoleAdmin,
	method("Service"): RoleService,
	method("Any"):     RoleUnspecified,
	method("Tail"):    RoleRead,
}

// startServer serves the test service and gRPC health on bufconn, with a
// real Keyring, and returns a connection factory.
func startServer(t *testing.T) (*Keyring, func(token string) *grpc.ClientConn) {
	t.Helper()
	k, err := NewKeyring(filepath.Join(t.TempDir(), "keys.json"), clock.NewManual(epoch))
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(UnaryServerInterceptor(k, testPolicy)),
		grpc.StreamInterceptor(StreamServerInterceptor(k, testPolicy)),
	)
	srv.RegisterService(&testDesc, echo{})
	healthpb.RegisterHealthServer(srv, healthgrpc.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	dial := func(token string) *grpc.ClientConn {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(Bearer(token)))
		}
		cc, err := grpc.NewClient("passthrough:///bufnet", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	return k, dial
}

// TestInterceptorMatrix calls every method with every kind of key and every
// kind of workspace over a real gRPC connection.
func TestInterceptorMatrix(t *testing.T) {
	k, dial := startServer(t)
	tokens := map[string]string{"none": "", "unknown": "cairn_admin_" + fmt.Sprintf("%064d", 0)}
	for _, r := range []Role{RoleWrite, RoleRead, RoleAdmin, RoleService} {
		ws := "acme"
		if r == RoleService {
			ws = ""
		}
		tok, err := k.Create(ws, r)
		if err != nil {
			t.Fatal(err)
		}
		tokens[r.String()] = tok
	}
	// A service key created for one workspace is limited to it: it may do
	// what an admin of that workspace may, but not read a partition's log
	// (which holds every workspace) or act on another workspace.
	bound, err := k.Create("acme", RoleService)
	if err != nil {
		t.Fatal(err)
	}
	tokens["service-acme"] = bound

	// methodCode[key][method]: the outcome of the interceptor alone.
	methodCode := map[string]map[string]codes.Code{
		"none":         {"Write": codes.Unauthenticated, "Read": codes.Unauthenticated, "Admin": codes.Unauthenticated, "Service": codes.Unauthenticated, "Any": codes.Unauthenticated, "Unlisted": codes.Unauthenticated, "Tail": codes.Unauthenticated},
		"unknown":      {"Write": codes.Unauthenticated, "Read": codes.Unauthenticated, "Admin": codes.Unauthenticated, "Service": codes.Unauthenticated, "Any": codes.Unauthenticated, "Unlisted": codes.Unauthenticated, "Tail": codes.Unauthenticated},
		"write":        {"Write": codes.OK, "Read": codes.PermissionDenied, "Admin": codes.PermissionDenied, "Service": codes.PermissionDenied, "Any": codes.OK, "Unlisted": codes.PermissionDenied, "Tail": codes.PermissionDenied},
		"read":         {"Write": codes.PermissionDenied, "Read": codes.OK, "Admin": codes.PermissionDenied, "Service": codes.PermissionDenied, "Any": codes.OK, "Unlisted": codes.PermissionDenied, "Tail": codes.OK},
		"admin":        {"Write": codes.OK, "Read": codes.OK, "Admin": codes.OK, "Service": codes.PermissionDenied, "Any": codes.OK, "Unlisted": codes.PermissionDenied, "Tail": codes.OK},
		"service":      {"Write": codes.OK, "Read": codes.OK, "Admin": codes.OK, "Service": codes.OK, "Any": codes.OK, "Unlisted": codes.PermissionDenied, "Tail": codes.OK},
		"service-acme": {"Write": codes.OK, "Read": codes.OK, "Admin": codes.OK, "Service": codes.PermissionDenied, "Any": codes.OK, "Unlisted": codes.PermissionDenied, "Tail": codes.OK},
	}
	// workspaceOutcome[key][requested]: what Workspace returns once the
	// method is allowed ("" code OK means the echoed workspace).
	type outcome struct {
		code codes.Code
		ws   string
	}
	workspaceOutcome := map[string]map[string]outcome{
		"write":        {"": {codes.OK, "acme"}, "acme": {codes.OK, "acme"}, "globex": {codes.PermissionDenied, ""}},
		"read":         {"": {codes.OK, "acme"}, "acme": {codes.OK, "acme"}, "globex": {codes.PermissionDenied, ""}},
		"admin":        {"": {codes.OK, "acme"}, "acme": {codes.OK, "acme"}, "globex": {codes.PermissionDenied, ""}},
		"service":      {"": {codes.InvalidArgument, ""}, "acme": {codes.OK, "acme"}, "globex": {codes.OK, "globex"}},
		"service-acme": {"": {codes.OK, "acme"}, "acme": {codes.OK, "acme"}, "globex": {codes.PermissionDenied, ""}},
	}

	for key, methods := range methodCode {
		cc := dial(tokens[key])
		for m, mcode := range methods {
			for _, requested := range []string{"", "acme", "globex"} {
				t.Run(fmt.Sprintf("key=%s/method=%s/workspace=%q", key, m, requested), func(t *testing.T) {
					want := outcome{code: mcode}
					if mcode == codes.OK {
						want = workspaceOutcome[key][requested]
					}
					got, err := call(t.Context(), cc, m, requested)
					if code := status.Code(err); code != want.code || got != want.ws {
						t.Fatalf("got (%q, %v: %v), want (%q, %v)", got, code, err, want.ws, want.code)
					}
					if err != nil && tokens[key] != "" && strings.Contains(status.Convert(err).Message(), tokens[key]) {
						t.Fatal("error message echoes the key")
					}
				})
			}
		}
	}
}

func call(ctx context.Context, cc *grpc.ClientConn, m, workspace string) (string, error) {
	req := wrapperspb.String(workspace)
	if m == "Tail" {
		st, err := cc.NewStream(ctx, &testDesc.Streams[0], method("Tail"))
		if err != nil {
			return "", err
		}
		if err := st.SendMsg(req); err != nil {
			return "", err
		}
		if err := st.CloseSend(); err != nil {
			return "", err
		}
		resp := new(wrapperspb.StringValue)
		if err := st.RecvMsg(resp); err != nil {
			if errors.Is(err, io.EOF) {
				return "", errors.New("stream ended without a message")
			}
			return "", err
		}
		return resp.GetValue(), nil
	}
	resp := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, method(m), req, resp); err != nil {
		return "", err
	}
	return resp.GetValue(), nil
}

func TestHealthIsPublic(t *testing.T) {
	_, dial := startServer(t)
	resp, err := healthpb.NewHealthClient(dial("")).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check without a key: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status = %v", resp.GetStatus())
	}
}

func TestCheckPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		want   string
	}{
		{name: "complete", policy: Policy{method("Write"): RoleWrite, method("Read"): RoleRead, method("Admin"): RoleAdmin,
			method("Service"): RoleService, method("Any"): RoleUnspecified, method("Unlisted"): RoleAdmin, method("Tail"): RoleRead}},
		{name: "test policy leaves Unlisted out", policy: testPolicy, want: "/cairn.test.v1.TestService/Unlisted"},
		{name: "stream missing", policy: Policy{}, want: "/cairn.test.v1.TestService/Tail"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolicy(tc.policy, &testDesc, &healthpb.Health_ServiceDesc)
			if tc.want == "" && err != nil {
				t.Fatalf("CheckPolicy = %v, want nil (health is public)", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckPolicy = %v, want one naming %s", err, tc.want)
			}
		})
	}
}
