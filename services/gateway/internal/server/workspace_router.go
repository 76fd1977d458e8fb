package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// WorkspaceRouter is a grpc.ClientConnInterface over the replicas of a
// service split by workspace (ingestion, routing), in replica order:
// replica k holds the workspaces w with stream.WorkspaceReplica(w, n) == k,
// all of each one's data, so every call goes to its workspace's replica
// and is exact. The workspace is the request's "workspace" field, else the
// caller key's. Health checks go to every replica (NOT_SERVING if any is).
// Which methods are routed so is pkg/methods' (methods.ByWorkspace).
type WorkspaceRouter struct {
	// all is a Router over the same replicas, for its broadcast.
	all  *Router
	keys web.Authenticator
}

// NewWorkspaceRouter returns conns[0] itself for a single replica, else a
// WorkspaceRouter; keys resolves the workspace of the caller's key when a
// request leaves workspace empty.
func NewWorkspaceRouter(conns []grpc.ClientConnInterface, keys web.Authenticator) (grpc.ClientConnInterface, error) {
	switch {
	case len(conns) == 0:
		return nil, fmt.Errorf("workspace router: no connections")
	case len(conns) == 1:
		return conns[0], nil
	case keys == nil:
		return nil, fmt.Errorf("workspace router: an authenticator is required")
	}
	return &WorkspaceRouter{all: &Router{conns: conns, keys: keys}, keys: keys}, nil
}

// Invoke sends a unary call to its workspace's replica; a health check to
// every replica.
func (r *WorkspaceRouter) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	req, ok := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "router: %s: request or reply is not a protobuf message", method)
	}
	switch m, _ := methods.Lookup(method); m.Route {
	case methods.Broadcast:
		return r.all.broadcast(ctx, method, req, out, opts)
	case methods.ByWorkspace:
		ws := stringField(req, "workspace")
		if ws == "" {
			ws = r.all.keyWorkspace(ctx)
		}
		// An unknown workspace (no or a bad key) goes to replica 0, whose own
		// authorization refuses it.
		return r.all.conns[stream.WorkspaceReplica(ws, len(r.all.conns))].Invoke(ctx, method, args, reply, opts...)
	}
	return r.unrouted(method)
}

// NewStream opens a stream on the replica of the caller key's workspace
// (the messages are not known yet); a key without a workspace (a service
// key) cannot be routed.
func (r *WorkspaceRouter) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if m, _ := methods.Lookup(method); m.Route != methods.ByWorkspace {
		return nil, r.unrouted(method)
	}
	ws := r.all.keyWorkspace(ctx)
	if ws == "" {
		return nil, status.Errorf(codes.Unimplemented, "%s: a stream over %d replicas is routed by the key's workspace, and this key has none", shortName(method), len(r.all.conns))
	}
	return r.all.conns[stream.WorkspaceReplica(ws, len(r.all.conns))].NewStream(ctx, desc, method, opts...)
}

// unrouted refuses a method that pkg/methods does not route by workspace.
func (r *WorkspaceRouter) unrouted(method string) error {
	return status.Errorf(codes.Unimplemented, "%s is not available when the service runs as %d replicas split by workspace", shortName(method), len(r.all.conns))
}
