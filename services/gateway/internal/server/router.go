package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/page"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// merges combine the reply of replica i > 0 into replica 0's, for the
// methods routed methods.Broadcast whose replies are not all alike.
var merges = map[string]func(dst, src proto.Message){
	"/cairn.health.v1.HealthService/Rescore": func(dst, src proto.Message) {
		d, s := dst.(*healthv1.RescoreResponse), src.(*healthv1.RescoreResponse)
		d.Accounts += s.GetAccounts()
		d.ElapsedMs = max(d.GetElapsedMs(), s.GetElapsedMs())
	},
	// Every replica reports the backlog of its own consumers.
	"/cairn.stages.v1.StagesService/GetStatus": func(dst, src proto.Message) {
		d := dst.(*stagesv1.GetStatusResponse)
		d.Backlog = mergeBacklog(d.GetBacklog(), src.(*stagesv1.GetStatusResponse).GetBacklog())
	},
	"/cairn.health.v1.HealthService/GetStatus": func(dst, src proto.Message) {
		d := dst.(*healthv1.GetStatusResponse)
		d.Backlog = mergeBacklog(d.GetBacklog(), src.(*healthv1.GetStatusResponse).GetBacklog())
	},
	methods.HealthCheck.Name: func(dst, src proto.Message) {
		d, s := dst.(*healthpb.HealthCheckResponse), src.(*healthpb.HealthCheckResponse)
		if s.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			d.Status = s.GetStatus()
		}
	},
}

// mergeBacklog adds replica i's backlog src to dst, the earlier
// replicas'. A replica that reports none is not known to be caught up.
func mergeBacklog(dst, src *commonv1.Backlog) *commonv1.Backlog {
	if dst == nil {
		dst = &commonv1.Backlog{}
	}
	if src == nil {
		dst.CaughtUp = false
		return dst
	}
	pkgserver.MergeBacklog(dst, src)
	return dst
}

// aggregator asks every replica for its part of an aggregate and merges
// the parts into out.
type aggregator func(ctx context.Context, r *Router, method string, req, out proto.Message, opts []grpc.CallOption) error

// aggregators answer the methods routed methods.Aggregate: figures over
// every account. Each replica answers for its own accounts, in a form that
// merges exactly (pkg/domain/aggregate), so the merged answer is that of one
// replica holding every account.
var aggregators = map[string]aggregator{
	"/cairn.stages.v1.StagesService/GetFunnel": func(ctx context.Context, r *Router, method string, req, out proto.Message, opts []grpc.CallOption) error {
		sub := proto.Clone(req).(*stagesv1.GetFunnelRequest)
		sub.Parts = true
		parts, err := fanOut[*stagesv1.GetFunnelResponse](ctx, r, method, sub, opts)
		if err != nil {
			return err
		}
		proto.Merge(out, aggregate.Funnel(parts, req.(*stagesv1.GetFunnelRequest).GetParts()))
		return nil
	},
	"/cairn.stages.v1.StagesService/GetMomentsOfTruth": func(ctx context.Context, r *Router, method string, req, out proto.Message, opts []grpc.CallOption) error {
		parts, err := fanOut[*stagesv1.GetMomentsOfTruthResponse](ctx, r, method, req, opts)
		if err != nil {
			return err
		}
		proto.Merge(out, aggregate.Moments(parts))
		return nil
	},
	"/cairn.health.v1.HealthService/Backtest": func(ctx context.Context, r *Router, method string, req, out proto.Message, opts []grpc.CallOption) error {
		sub := proto.Clone(req).(*healthv1.BacktestRequest)
		sub.Parts = true
		parts, err := fanOut[*healthv1.BacktestResponse](ctx, r, method, sub, opts)
		if err != nil {
			return err
		}
		proto.Merge(out, aggregate.Backtest(parts, req.(*healthv1.BacktestRequest).GetParts()))
		return nil
	},
	"/cairn.stages.v1.StagesService/StartReplay": startReplay,
	"/cairn.stages.v1.StagesService/GetReplay": func(ctx context.Context, r *Router, method string, req, out proto.Message, opts []grpc.CallOption) error {
		parts, err := fanOut[*stagesv1.GetReplayResponse](ctx, r, method, req, opts)
		if err != nil {
			return err
		}
		proto.Merge(out, &stagesv1.GetReplayResponse{Replay: aggregate.Replay(replaysOf(parts))})
		return nil
	},
}

// startReplay starts the replay on replica 0, which names it, then under
// that name on every other replica, each over its own partitions. Like a
// definition write it is not atomic: it stops at the first replica that
// fails and names it; the replicas already started go on, and GetReplay
// then fails on the replica that has no such replay.
func startReplay(ctx context.Context, r *Router, method string, req, out proto.Message, opts []grpc.CallOption) error {
	sub := proto.Clone(req).(*stagesv1.StartReplayRequest)
	parts := make([]*stagesv1.StartReplayResponse, len(r.conns))
	for i, cc := range r.conns {
		parts[i] = &stagesv1.StartReplayResponse{}
		if err := cc.Invoke(ctx, method, sub, parts[i], opts...); err != nil {
			return replicaError(i, len(r.conns), err)
		}
		if i == 0 {
			sub.ReplayId = parts[0].GetReplay().GetReplayId()
		}
	}
	replays := make([]*stagesv1.Replay, len(parts))
	for i, p := range parts {
		replays[i] = p.GetReplay()
	}
	proto.Merge(out, &stagesv1.StartReplayResponse{Replay: aggregate.Replay(replays)})
	return nil
}

// replaysOf lists the replays of GetReplay answers.
func replaysOf(parts []*stagesv1.GetReplayResponse) []*stagesv1.Replay {
	out := make([]*stagesv1.Replay, len(parts))
	for i, p := range parts {
		out[i] = p.GetReplay()
	}
	return out
}

// fanOut sends req to every replica at once and returns their answers in
// replica order, or the error of the first replica (by index) that failed,
// naming it.
func fanOut[T proto.Message](ctx context.Context, r *Router, method string, req proto.Message, opts []grpc.CallOption) ([]T, error) {
	// Parts carry raw times and samples, so they may exceed gRPC's default
	// 4 MiB; allow what the services' own clients allow.
	opts = append(slices.Clip(opts), grpc.MaxCallRecvMsgSize(pkgserver.MaxClientRecvBytes))
	parts := make([]T, len(r.conns))
	errs := make([]error, len(r.conns))
	var wg sync.WaitGroup
	for i, cc := range r.conns {
		var zero T
		parts[i] = zero.ProtoReflect().New().Interface().(T)
		wg.Go(func() { errs[i] = cc.Invoke(ctx, method, req, parts[i], opts...) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, replicaError(i, len(r.conns), err)
		}
	}
	return parts, nil
}

// Router is a grpc.ClientConnInterface over the replicas of one service,
// in replica order. Replica i owns the accounts whose partition p has
// stream.Replica(p, replicas) == i, so a request naming an account goes to
// its owner; other requests are routed by method, as pkg/methods says (see
// route). Figures over every account (funnels, moments of truth,
// backtests, replays) are merged from every replica's part; a method with
// no route fails with Unimplemented rather than return one replica's part
// as if it were the whole.
type Router struct {
	conns      []grpc.ClientConnInterface
	partitions uint32
	keys       web.Authenticator
}

// NewRouter returns conns[0] itself for a single replica, else a Router.
// partitions is the suite's -partitions; keys resolves the workspace of
// the caller's key when a request leaves workspace empty.
func NewRouter(conns []grpc.ClientConnInterface, partitions uint32, keys web.Authenticator) (grpc.ClientConnInterface, error) {
	switch {
	case len(conns) == 0:
		return nil, fmt.Errorf("router: no connections")
	case len(conns) == 1:
		return conns[0], nil
	case partitions == 0 || int(partitions) < len(conns):
		return nil, fmt.Errorf("router: %d replicas need at least as many partitions, got %d", len(conns), partitions)
	case keys == nil:
		return nil, fmt.Errorf("router: an authenticator is required")
	}
	return &Router{conns: conns, partitions: partitions, keys: keys}, nil
}

// Invoke sends one unary call to the replica(s) its method and request
// call for.
func (r *Router) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	req, ok := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "router: %s: request or reply is not a protobuf message", method)
	}
	switch route(method, req) {
	case methods.ByAccount:
		return r.conns[r.owner(ctx, req)].Invoke(ctx, method, args, reply, opts...)
	case methods.AnyReplica:
		return r.any(ctx, method, args, reply, opts)
	case methods.Broadcast:
		return r.broadcast(ctx, method, req, out, opts)
	case methods.ConcatPages:
		return r.concat(ctx, method, req, out, opts)
	case methods.Aggregate:
		if agg := aggregators[method]; agg != nil {
			return agg(ctx, r, method, req, out, opts)
		}
	}
	return status.Errorf(codes.Unimplemented, "%s is not available when the service runs as %d replicas: its answer is an aggregate over every account (see docs/scaling.md)", shortName(method), len(r.conns))
}

// NewStream is not routed: the gateway serves no streaming method, and the
// services' Subscribe is read by consumers with their own routing
// (stream.Route).
func (r *Router) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Errorf(codes.Unimplemented, "%s: streaming calls are not routed across replicas", method)
}

// route is how a call of method is sent: its route in pkg/methods, except
// that a request naming an account goes to the account's owner whatever
// its method (broadcasts and aggregates aside), since all of an account's
// data lives there. A method routed by account whose request names none,
// like a method the tables do not list, is methods.NotRouted.
func route(method string, req proto.Message) methods.Route {
	m, _ := methods.Lookup(method)
	switch m.Route {
	case methods.Broadcast, methods.Aggregate:
		return m.Route
	case methods.ByAccount, methods.AnyReplica, methods.ConcatPages:
		if stringField(req, "account_id") != "" {
			return methods.ByAccount
		}
		if m.Route != methods.ByAccount {
			return m.Route
		}
	}
	return methods.NotRouted
}

// owner is the replica of the request's account. The workspace is the
// request's, else the caller key's. When neither is known the call goes to
// replica 0, whose own authorization then refuses it.
func (r *Router) owner(ctx context.Context, req proto.Message) int {
	ws := stringField(req, "workspace")
	if ws == "" {
		ws = r.keyWorkspace(ctx)
	}
	return stream.AccountReplica(ws, stringField(req, "account_id"), r.partitions, len(r.conns))
}

// keyWorkspace resolves the workspace of the bearer key that grpc-gateway
// forwards in the outgoing metadata.
func (r *Router) keyWorkspace(ctx context.Context) string {
	md, _ := metadata.FromOutgoingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := web.BearerToken(v); ok {
			if k, err := r.keys.Authenticate(tok); err == nil {
				return k.Workspace
			}
		}
	}
	return ""
}

// any asks replica 0 and, while a replica is unavailable, the next one:
// every replica holds the definitions.
func (r *Router) any(ctx context.Context, method string, args, reply any, opts []grpc.CallOption) error {
	var err error
	for _, cc := range r.conns {
		if err = cc.Invoke(ctx, method, args, reply, opts...); status.Code(err) != codes.Unavailable {
			return err
		}
	}
	return err
}

// broadcast sends the call to every replica in order and stops at the first
// error, naming the replica: a write is not atomic across replicas, and a
// retry re-sends it to all.
func (r *Router) broadcast(ctx context.Context, method string, req, out proto.Message, opts []grpc.CallOption) error {
	merge := merges[method]
	for i, cc := range r.conns {
		dst := out
		if i > 0 {
			dst = out.ProtoReflect().New().Interface()
		}
		if err := cc.Invoke(ctx, method, req, dst, opts...); err != nil {
			return replicaError(i, len(r.conns), err)
		}
		if i > 0 && merge != nil {
			merge(out, dst)
		}
	}
	return nil
}

// concat serves a paged list as the pages of replica 0, then those of
// replica 1, and so on, filling each page across a replica boundary. Every
// item is listed exactly once; the order is by replica, then the service's
// own order. The page token carries the replica index and its own token.
func (r *Router) concat(ctx context.Context, method string, req, out proto.Message, opts []grpc.CallOption) error {
	pr, _ := req.ProtoReflect().Get(pageField(req)).Message().Interface().(*commonv1.PageRequest)
	idx, inner, err := decodeRouteToken(pr.GetPageToken(), len(r.conns))
	if err != nil {
		return status.Error(codes.InvalidArgument, "page.page_token: not a token of this list")
	}
	items := listField(out)
	if items == nil {
		return status.Errorf(codes.Internal, "router: %s: reply has no list to page", method)
	}
	remaining := page.Size(pr)
	next := ""
	for idx < len(r.conns) {
		sub := proto.Clone(req)
		sub.ProtoReflect().Set(pageField(sub), protoreflect.ValueOfMessage((&commonv1.PageRequest{
			PageSize: int32(remaining), PageToken: inner,
		}).ProtoReflect()))
		got := out.ProtoReflect().New().Interface()
		if err := r.conns[idx].Invoke(ctx, method, sub, got, opts...); err != nil {
			return replicaError(idx, len(r.conns), err)
		}
		list := got.ProtoReflect().Get(items).List()
		dst := out.ProtoReflect().Mutable(items).List()
		for i := range list.Len() {
			dst.Append(list.Get(i))
		}
		remaining -= list.Len()
		if tok := pageResponse(got).GetNextPageToken(); tok != "" {
			next = encodeRouteToken(idx, tok)
			break
		}
		idx, inner = idx+1, ""
		if remaining <= 0 {
			if idx < len(r.conns) {
				next = encodeRouteToken(idx, "")
			}
			break
		}
	}
	if f := out.ProtoReflect().Descriptor().Fields().ByName("page"); f != nil && f.Message() != nil && f.Message().FullName() == "cairn.common.v1.PageResponse" {
		// The replicas' totals are not added up: a replica's answer may not
		// know its own, so the total is unknown (-1).
		out.ProtoReflect().Set(f, protoreflect.ValueOfMessage((&commonv1.PageResponse{NextPageToken: next, TotalSize: -1}).ProtoReflect()))
	}
	return nil
}

// replicaError keeps the code and details of err and names the replica.
func replicaError(i, n int, err error) error {
	st := status.Convert(err).Proto()
	st.Message = fmt.Sprintf("replica %d of %d: %s", i, n, st.GetMessage())
	return status.FromProto(st).Err()
}

// encodeRouteToken wraps a replica's page token with the replica index.
func encodeRouteToken(idx int, inner string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("r" + strconv.Itoa(idx) + "." + inner))
}

// decodeRouteToken undoes encodeRouteToken; "" is the first page.
func decodeRouteToken(tok string, replicas int) (int, string, error) {
	if tok == "" {
		return 0, "", nil
	}
	if len(tok) > page.MaxTokenLen {
		return 0, "", fmt.Errorf("token too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 3 || b[0] != 'r' {
		return 0, "", fmt.Errorf("malformed token")
	}
	head, inner, ok := strings.Cut(string(b[1:]), ".")
	idx, err := strconv.Atoi(head)
	if !ok || err != nil || idx < 0 || idx >= replicas {
		return 0, "", fmt.Errorf("malformed token")
	}
	return idx, inner, nil
}

// shortName is the method's name without its service, e.g. "GetFunnel".
func shortName(method string) string { return method[strings.LastIndexByte(method, '/')+1:] }

// stringField returns the string field name of m, or "".
func stringField(m proto.Message, name protoreflect.Name) string {
	f := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if f == nil || f.Kind() != protoreflect.StringKind || f.IsList() {
		return ""
	}
	return m.ProtoReflect().Get(f).String()
}

// pageField is m's "page" field when it is a cairn.common.v1.PageRequest.
func pageField(m proto.Message) protoreflect.FieldDescriptor {
	f := m.ProtoReflect().Descriptor().Fields().ByName("page")
	if f == nil || f.Message() == nil || f.Message().FullName() != "cairn.common.v1.PageRequest" {
		return nil
	}
	return f
}

// listField is the repeated message field of a list reply (its items).
func listField(m proto.Message) protoreflect.FieldDescriptor {
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); f.IsList() && f.Message() != nil {
			return f
		}
	}
	return nil
}

// pageResponse is m's "page" field, or nil.
func pageResponse(m proto.Message) *commonv1.PageResponse {
	f := m.ProtoReflect().Descriptor().Fields().ByName("page")
	if f == nil || f.Message() == nil {
		return nil
	}
	p, _ := m.ProtoReflect().Get(f).Message().Interface().(*commonv1.PageResponse)
	return p
}
