// Package methods is the one table of every RPC of Cairn's four services:
// its full gRPC name, the least auth.Role that may call it, how the gateway
// routes it across the replicas of its service, and its REST binding (as in
// proto/cairn/http.yaml). The services build their auth.Policy from it
// (Policy) and the gateway routes by it (Lookup), so a new RPC is declared
// once. The tests check the tables against the generated service
// descriptors and against http.yaml.
package methods

import (
	"fmt"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// Route is how the gateway sends a method's calls when its service runs as
// several replicas. With one replica every call goes to it.
//
// A service split by account partition (stages, health) keeps all of an
// account's data on the replica owning the account's partition, so a
// request that names an account (a non-empty account_id) goes to that
// replica whatever its Route, except Broadcast and Aggregate.
type Route int

const (
	// NotRouted: the gateway does not route the method. Subscribe is read
	// by consumers, which follow each replica's log themselves
	// (stream.Route).
	NotRouted Route = iota
	// ByAccount: the request names an account and the replica owning the
	// account's partition answers; a request that names none cannot be
	// routed and is refused with Unimplemented.
	ByAccount
	// ByWorkspace: the service is split by workspace (ingestion, routing)
	// and the replica of the request's workspace, else the caller key's,
	// answers: all of a workspace's data is there.
	ByWorkspace
	// AnyReplica: workspace-wide definitions, which every replica holds:
	// replica 0 answers, or the next while one is unavailable.
	AnyReplica
	// Broadcast: workspace-wide writes and health checks go to every
	// replica in order; replica 0's reply is returned, merged with the
	// others' where the gateway has a merge for the method.
	Broadcast
	// ConcatPages: a paged list over every account: replica 0's pages,
	// then replica 1's, and so on.
	ConcatPages
	// Aggregate: figures over every account: every replica answers for its
	// own accounts and the gateway merges the parts (pkg/domain/aggregate).
	Aggregate
)

var routeNames = [...]string{
	NotRouted:   "not routed",
	ByAccount:   "by account",
	ByWorkspace: "by workspace",
	AnyReplica:  "any replica",
	Broadcast:   "broadcast",
	ConcatPages: "concat pages",
	Aggregate:   "aggregate",
}

// String names the route, e.g. "by account".
func (r Route) String() string {
	if r >= 0 && int(r) < len(routeNames) {
		return routeNames[r]
	}
	return fmt.Sprintf("Route(%d)", int(r))
}

// REST is a method's HTTP binding; the zero REST means gRPC only.
type REST struct {
	// Verb is the HTTP method: GET, POST, PUT, PATCH or DELETE.
	Verb string
	// Path is the URL template, e.g. "/v1/accounts/{account_id}/health".
	Path string
	// Body is the request field the body fills: "*" for the whole request,
	// a field name, or "" for no body.
	Body string
}

// Method is one RPC.
type Method struct {
	// Name is the full gRPC method name, e.g.
	// "/cairn.stages.v1.StagesService/GetFunnel".
	Name string
	// Role is the least role a key needs to call the method (auth.Allows).
	Role auth.Role
	// Route is how the gateway sends it across replicas.
	Route Route
	// REST is its HTTP binding; zero for gRPC-only methods.
	REST REST
}

// Table lists every RPC of one service.
type Table struct {
	// Service is the full protobuf service name, e.g.
	// "cairn.stages.v1.StagesService".
	Service string
	// ByWorkspace says the service is split across replicas by workspace
	// (its routed methods are ByWorkspace) rather than by account partition.
	ByWorkspace bool
	// Methods are the service's RPCs in the order of its proto file.
	Methods []Method
}

// Policy returns the auth.Policy of t: every method's minimum role. gRPC
// health checks and reflection need no entry: auth treats them as public.
func Policy(t Table) auth.Policy {
	p := make(auth.Policy, len(t.Methods))
	for _, m := range t.Methods {
		p[m.Name] = m.Role
	}
	return p
}

// Lookup returns the method named name (a full gRPC method name) from the
// four tables, or HealthCheck.
func Lookup(name string) (Method, bool) {
	m, ok := index[name]
	return m, ok
}

// Tables returns the tables of the four services.
func Tables() []Table { return []Table{Ingestion, Stages, Health, Routing, Plays} }

// HealthCheck is the gRPC health check every service serves. It is public
// (auth lets it through without a key, so no Policy lists it), and the
// gateway asks every replica (NOT_SERVING if any is not serving).
var HealthCheck = Method{Name: "/grpc.health.v1.Health/Check", Role: auth.RoleUnspecified, Route: Broadcast}

// index maps every full method name to its Method.
var index = func() map[string]Method {
	idx := map[string]Method{HealthCheck.Name: HealthCheck}
	for _, t := range Tables() {
		for _, m := range t.Methods {
			if _, dup := idx[m.Name]; dup {
				panic("methods: " + m.Name + " is listed twice")
			}
			idx[m.Name] = m
		}
	}
	return idx
}()

// table builds a Table, naming each method under service.
func table(service string, byWorkspace bool, ms ...Method) Table {
	for i := range ms {
		ms[i].Name = "/" + service + "/" + ms[i].Name
	}
	return Table{Service: service, ByWorkspace: byWorkspace, Methods: ms}
}

// m declares a method by its short name; table prefixes the service.
func m(name string, role auth.Role, route Route, rest REST) Method {
	return Method{Name: name, Role: role, Route: route, REST: rest}
}

func get(path string) REST         { return REST{Verb: "GET", Path: path} }
func del(path string) REST         { return REST{Verb: "DELETE", Path: path} }
func post(path, body string) REST  { return REST{Verb: "POST", Path: path, Body: body} }
func put(path, body string) REST   { return REST{Verb: "PUT", Path: path, Body: body} }
func patch(path, body string) REST { return REST{Verb: "PATCH", Path: path, Body: body} }

// grpcOnly marks a method without a REST binding.
var grpcOnly REST
