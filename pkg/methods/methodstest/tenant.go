// Package methodstest holds the tenant-isolation table test that every
// service runs over its own method table (pkg/methods) against its real
// gRPC handler chain: for every RPC and every key role, a key bound to
// workspace Home that asks for workspace Rival is refused with
// PermissionDenied, the same key of a role too low for the method is
// refused too, and a key of the right role asking for its own workspace
// gets past authorization.
package methodstest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods"
)

// The two tenants of the table.
const (
	// Home is the workspace every bound key of Keys belongs to.
	Home = "acme"
	// Rival is the other tenant's workspace, which no bound key may reach.
	Rival = "rival"
)

// Keys are the tokens of the table's keys.
type Keys struct {
	// Read, Write, Admin and Service are bound to Home.
	Read, Write, Admin, Service string
	// ClusterWide is a service key bound to no workspace (the suite's
	// own), which may act on any workspace and Subscribe.
	ClusterWide string
}

// StaticKeys returns an in-memory authenticator holding the table's keys.
func StaticKeys() (auth.StaticKeys, Keys) {
	k := Keys{Read: "t-read", Write: "t-write", Admin: "t-admin", Service: "t-service", ClusterWide: "t-cluster"}
	return auth.StaticKeys{
		k.Read:        {KeyID: "key_read", Workspace: Home, Role: auth.RoleRead},
		k.Write:       {KeyID: "key_write", Workspace: Home, Role: auth.RoleWrite},
		k.Admin:       {KeyID: "key_admin", Workspace: Home, Role: auth.RoleAdmin},
		k.Service:     {KeyID: "key_service", Workspace: Home, Role: auth.RoleService},
		k.ClusterWide: {KeyID: "key_cluster", Role: auth.RoleService},
	}, k
}

// CreateKeys adds the table's keys to kr (the keyring a real process
// loads) and returns their tokens.
func CreateKeys(t testing.TB, kr *auth.Keyring) Keys {
	t.Helper()
	var k Keys
	for _, c := range []struct {
		ws   string
		role auth.Role
		tok  *string
	}{
		{Home, auth.RoleRead, &k.Read},
		{Home, auth.RoleWrite, &k.Write},
		{Home, auth.RoleAdmin, &k.Admin},
		{Home, auth.RoleService, &k.Service},
		{"", auth.RoleService, &k.ClusterWide},
	} {
		tok, err := kr.Create(c.ws, c.role)
		if err != nil {
			t.Fatal(err)
		}
		*c.tok = tok
	}
	return k
}

// key is one key of the table.
type key struct {
	name, token string
	role        auth.Role
	bound       bool
}

func (k Keys) list() []key {
	return []key{
		{"read", k.Read, auth.RoleRead, true},
		{"write", k.Write, auth.RoleWrite, true},
		{"admin", k.Admin, auth.RoleAdmin, true},
		{"service", k.Service, auth.RoleService, true},
		{"cluster-wide service", k.ClusterWide, auth.RoleService, false},
	}
}

// allowed reports whether k may call a method needing need: its role
// allows it, and a method only for services (Subscribe, which reads
// partitions holding every workspace) needs a cluster-wide key.
func (k key) allowed(need auth.Role) bool {
	return auth.Allows(k.role, need) && !(need == auth.RoleService && k.bound)
}

// authCodes are the codes of the authorization layer.
func authCode(c codes.Code) bool { return c == codes.PermissionDenied || c == codes.Unauthenticated }

// CheckTenants calls every method of tbl over conn, which must reach the
// service's real handler chain authenticating keys. For every key of keys:
//
//   - asking for workspace Rival: a key bound to Home gets PermissionDenied,
//     with a message naming neither workspace, and no data; the cluster-wide
//     service key gets past authorization;
//   - asking for its own workspace: a key whose role allows the method gets
//     past authorization, any other gets PermissionDenied.
//
// "Past authorization" is any answer but PermissionDenied, Unauthenticated,
// Internal and Unknown: the requests are otherwise empty, so most methods
// refuse them as invalid or not found, which is fine.
func CheckTenants(t *testing.T, conn grpc.ClientConnInterface, tbl methods.Table, keys Keys) {
	t.Helper()
	sd, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(tbl.Service))
	if err != nil {
		t.Fatalf("%s: %v (import its generated package)", tbl.Service, err)
	}
	svc := sd.(protoreflect.ServiceDescriptor)
	for _, m := range tbl.Methods {
		name := m.Name[strings.LastIndex(m.Name, "/")+1:]
		md := svc.Methods().ByName(protoreflect.Name(name))
		if md == nil {
			t.Fatalf("%s: not in the descriptor of %s", m.Name, tbl.Service)
		}
		t.Run(name, func(t *testing.T) {
			if !hasWorkspace(md.Input()) && m.Role != auth.RoleService {
				t.Fatalf("%s names no workspace: its tenant cannot be checked", md.Input().FullName())
			}
			for _, k := range keys.list() {
				for _, ws := range []string{Rival, Home} {
					if !hasWorkspace(md.Input()) && ws == Rival {
						continue
					}
					code, msg, data := call(t, conn, m.Name, md, k.token, ws)
					var want string
					switch {
					case !k.allowed(m.Role):
						want = "PermissionDenied (role)"
						if code != codes.PermissionDenied {
							break
						}
						continue
					case ws == Rival && k.bound:
						want = "PermissionDenied (workspace)"
						if code != codes.PermissionDenied {
							break
						}
						if strings.Contains(msg, Rival) || strings.Contains(msg, Home) {
							t.Errorf("%s key asking for %s: message %q names a workspace", k.name, ws, msg)
						}
						continue
					default:
						want = "past authorization"
						if !authCode(code) && code != codes.Internal && code != codes.Unknown {
							continue
						}
					}
					t.Errorf("%s key asking for workspace %s: %v %q (data: %v), want %s", k.name, ws, code, msg, data, want)
				}
			}
		})
	}
}

// hasWorkspace reports whether a request names a workspace, at its top
// level or in a message field (IngestStream's batch).
func hasWorkspace(md protoreflect.MessageDescriptor) bool {
	return workspaceField(md) != nil
}

// workspaceField returns the path of md's workspace field: the field
// itself, or a message field and its workspace field.
func workspaceField(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if f := md.Fields().ByName("workspace"); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() {
		return []protoreflect.FieldDescriptor{f}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Message() == nil || f.IsList() || f.IsMap() {
			continue
		}
		if w := f.Message().Fields().ByName("workspace"); w != nil && w.Kind() == protoreflect.StringKind && !w.IsList() {
			return []protoreflect.FieldDescriptor{f, w}
		}
	}
	return nil
}

// request builds an empty request of md asking for workspace ws.
func request(t *testing.T, md protoreflect.MethodDescriptor, ws string) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		t.Fatalf("%s: %v", md.Input().FullName(), err)
	}
	req := mt.New()
	path := workspaceField(md.Input())
	msg := req
	for i, f := range path {
		if i == len(path)-1 {
			msg.Set(f, protoreflect.ValueOfString(ws))
			break
		}
		msg = msg.Mutable(f).Message()
	}
	if f := md.Input().Fields().ByName("from_offset"); f != nil && f.Kind() == protoreflect.Uint64Kind {
		// Subscribe: an offset far beyond the head is refused at once,
		// where offset 0 would tail the log and never answer.
		req.Set(f, protoreflect.ValueOfUint64(1<<62))
	}
	return req.Interface()
}

// call makes one call of method with token asking for workspace ws. It
// returns the code and message of the answer, and what data came back
// when the call was refused (a streaming call may answer with a message
// carrying its error: IngestStream's BatchError).
func call(t *testing.T, conn grpc.ClientConnInterface, method string, md protoreflect.MethodDescriptor, token, ws string) (codes.Code, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	req := request(t, md, ws)
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		t.Fatalf("%s: %v", md.Output().FullName(), err)
	}
	out := mt.New().Interface()
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		err := conn.Invoke(ctx, method, req, out, grpc.WaitForReady(true))
		st := status.Convert(err)
		if err != nil {
			return st.Code(), st.Message(), ""
		}
		return codes.OK, "", fmt.Sprint(out)
	}
	desc := &grpc.StreamDesc{StreamName: string(md.Name()), ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}
	cs, err := conn.NewStream(ctx, desc, method, grpc.WaitForReady(true))
	if err != nil {
		st := status.Convert(err)
		return st.Code(), st.Message(), ""
	}
	if err := cs.SendMsg(req); err != nil && err != io.EOF {
		t.Fatalf("send: %v", err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatalf("close send: %v", err)
	}
	err = cs.RecvMsg(out)
	if err != nil {
		st := status.Convert(err)
		return st.Code(), st.Message(), ""
	}
	if c, msg, ok := batchError(out.ProtoReflect()); ok {
		return c, msg, ""
	}
	return codes.OK, "", fmt.Sprint(out)
}

// batchError reads the error a streaming answer carries in its "error"
// field (code and message), as IngestStream answers a refused batch.
func batchError(m protoreflect.Message) (codes.Code, string, bool) {
	f := m.Descriptor().Fields().ByName("error")
	if f == nil || f.Message() == nil || !m.Has(f) {
		return codes.OK, "", false
	}
	e := m.Get(f).Message()
	cf, mf := e.Descriptor().Fields().ByName("code"), e.Descriptor().Fields().ByName("message")
	if cf == nil || mf == nil {
		return codes.OK, "", false
	}
	return codes.Code(e.Get(cf).Int()), e.Get(mf).String(), true
}

// Upstream serves every method of every table (methods.Tables) on a
// loopback gRPC server that authorizes calls the way the services do and
// nothing more: pkg/auth's interceptor with the tables' policies, then a
// handler that resolves the request's workspace with auth.Workspace (as
// every service handler does first) and answers an empty response. It
// returns a connection to it, closed with the server when the test ends.
// Tests of what sits in front of the services (the gateway) use it as
// their upstream; the generated packages of the services must be linked
// in (imported) for their messages to decode.
func Upstream(t testing.TB, a auth.Authenticator) *grpc.ClientConn {
	t.Helper()
	policy := auth.Policy{}
	for _, tbl := range methods.Tables() {
		maps.Copy(policy, methods.Policy(tbl))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The unknown-service handler serves every method, behind the stream
	// interceptors (unary calls included).
	g := grpc.NewServer(grpc.StreamInterceptor(auth.StreamServerInterceptor(a, policy)), grpc.UnknownServiceHandler(resolve))
	served := make(chan struct{})
	go func() { _ = g.Serve(lis); close(served) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		g.Stop()
		<-served
	})
	return conn
}

// resolve decodes the request of the method called, resolves its
// workspace with auth.Workspace and answers an empty response.
func resolve(_ any, ss grpc.ServerStream) error {
	name, _ := grpc.MethodFromServerStream(ss)
	svc, method, _ := strings.Cut(strings.TrimPrefix(name, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return status.Errorf(codes.Unimplemented, "unknown service %s", svc)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", name)
	}
	in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		return status.Errorf(codes.Unimplemented, "%s: %v", md.Input().FullName(), err)
	}
	out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return status.Errorf(codes.Unimplemented, "%s: %v", md.Output().FullName(), err)
	}
	req := in.New()
	if err := ss.RecvMsg(req.Interface()); err != nil {
		return err
	}
	if path := workspaceField(md.Input()); path != nil {
		msg := req
		for _, f := range path[:len(path)-1] {
			msg = msg.Get(f).Message()
		}
		if _, err := auth.Workspace(ss.Context(), msg.Get(path[len(path)-1]).String()); err != nil {
			return err
		}
	}
	return ss.SendMsg(out.New().Interface())
}
