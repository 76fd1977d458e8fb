package auth

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Policy maps a full gRPC method name, e.g.
// "/cairn.ingestion.v1.IngestionService/Ingest", to the minimum Role it
// needs. Methods not listed are denied, except gRPC health checking and
// reflection, which are public so that probes and grpcurl work without a key.
type Policy map[string]Role

// public reports whether method needs no key.
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// Messages are fixed strings: they never echo the presented key.
var (
	errNoKey = status.Error(codes.Unauthenticated,
		`missing API key: send metadata "authorization: Bearer <key>"`)
	errBadKey        = status.Error(codes.Unauthenticated, "invalid API key")
	errMethodDenied  = status.Error(codes.PermissionDenied, "the API key may not call this method")
	errWorkspaceDeny = status.Error(codes.PermissionDenied, "the API key may not access the requested workspace")
)

// authorize authenticates the caller of method and checks p. It returns the
// context carrying the Principal.
func authorize(ctx context.Context, a Authenticator, p Policy, method string) (context.Context, error) {
	if public(method) {
		return ctx, nil
	}
	token, ok := bearerToken(ctx)
	if !ok {
		return nil, errNoKey
	}
	pr, err := a.Authenticate(token)
	if err != nil {
		return nil, errBadKey
	}
	need, listed := p[method]
	if !listed || !Allows(pr.Role, need) {
		return nil, errMethodDenied
	}
	if need == RoleService && pr.Workspace != "" {
		// Service-only methods (Subscribe) read whole partitions, which
		// hold every workspace: a workspace-bound service key cannot.
		return nil, errMethodDenied
	}
	return NewContext(ctx, pr), nil
}

// bearerToken extracts the token from the "authorization" metadata.
func bearerToken(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", false
	}
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", false
	}
	return parseBearer(vals[0])
}

// parseBearer parses "Bearer <token>"; the scheme is case-insensitive.
func parseBearer(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(v[len(scheme):])
	if tok == "" {
		return "", false
	}
	return tok, true
}

// UnaryServerInterceptor authenticates every unary call and enforces p.
func UnaryServerInterceptor(a Authenticator, p Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authorize(ctx, a, p, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authenticates every streaming call and enforces p.
func StreamServerInterceptor(a Authenticator, p Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authorize(ss.Context(), a, p, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

// ctxStream replaces a ServerStream's context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// Workspace resolves the workspace a request acts on. An empty requested
// workspace means the key's own. A key may name only its own workspace;
// anything else is a PermissionDenied status that does not reveal whether
// the workspace exists. A cluster-wide service key (one bound to no
// workspace) may name any workspace but must name one (InvalidArgument
// "workspace: ..."); a service key bound to a workspace is limited to it
// like any other key. Without a Principal in ctx it returns Unauthenticated.
func Workspace(ctx context.Context, requested string) (string, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return "", errNoKey
	}
	if p.ClusterWide() {
		// A cluster-wide service key (the suite's own peers) acts on any
		// workspace, but must name it.
		if requested == "" {
			return "", status.Error(codes.InvalidArgument, "workspace: required when calling with a service key")
		}
		return requested, nil
	}
	if p.Workspace == "" {
		return "", errWorkspaceDeny
	}
	if requested == "" || requested == p.Workspace {
		return p.Workspace, nil
	}
	return "", errWorkspaceDeny
}

// Bearer returns client credentials that send token as
// "authorization: Bearer <token>". They work over plaintext loopback
// connections, because internal peers talk plaintext inside the pod network.
func Bearer(token string) credentials.PerRPCCredentials { return bearer(token) }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// String keeps the token out of logs and %v output.
func (bearer) String() string { return "Bearer(redacted)" }

// GoString keeps the token out of %#v output.
func (bearer) GoString() string { return "auth.Bearer(redacted)" }

// CheckPolicy reports the methods of the given services that p does not
// list (and which the interceptors would therefore deny to every key).
// Services call it in a test so that a new RPC cannot ship unreachable.
func CheckPolicy(p Policy, services ...*grpc.ServiceDesc) error {
	var missing []string
	for _, sd := range services {
		for _, m := range sd.Methods {
			if name := "/" + sd.ServiceName + "/" + m.MethodName; !listed(p, name) {
				missing = append(missing, name)
			}
		}
		for _, st := range sd.Streams {
			if name := "/" + sd.ServiceName + "/" + st.StreamName; !listed(p, name) {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("policy lists no role for %s", strings.Join(missing, ", "))
	}
	return nil
}

func listed(p Policy, method string) bool {
	_, ok := p[method]
	return ok || public(method)
}
