package methods_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods"
)

// services pairs each table with its generated service descriptor.
func services(t *testing.T) map[string]struct {
	table methods.Table
	desc  protoreflect.ServiceDescriptor
} {
	t.Helper()
	out := map[string]struct {
		table methods.Table
		desc  protoreflect.ServiceDescriptor
	}{}
	for name, c := range map[string]struct {
		table methods.Table
		file  protoreflect.FileDescriptor
	}{
		"ingestion": {methods.Ingestion, ingestionv1.File_cairn_ingestion_v1_ingestion_proto},
		"stages":    {methods.Stages, stagesv1.File_cairn_stages_v1_stages_proto},
		"health":    {methods.Health, healthv1.File_cairn_health_v1_health_proto},
		"routing":   {methods.Routing, routingv1.File_cairn_routing_v1_routing_proto},
		"plays":     {methods.Plays, playsv1.File_cairn_plays_v1_plays_proto},
	} {
		if n := c.file.Services().Len(); n != 1 {
			t.Fatalf("%s: %s declares %d services, want 1", name, c.file.Path(), n)
		}
		out[name] = struct {
			table methods.Table
			desc  protoreflect.ServiceDescriptor
		}{c.table, c.file.Services().Get(0)}
	}
	return out
}

func fullName(sd protoreflect.ServiceDescriptor, md protoreflect.MethodDescriptor) string {
	return "/" + string(sd.FullName()) + "/" + string(md.Name())
}

// TestTablesMatchDescriptors checks that every RPC of each generated
// service is in its table exactly once, and nothing else is.
func TestTablesMatchDescriptors(t *testing.T) {
	if got := len(methods.Tables()); got != 5 {
		t.Fatalf("Tables() has %d tables, want 5", got)
	}
	for name, s := range services(t) {
		t.Run(name, func(t *testing.T) {
			if s.table.Service != string(s.desc.FullName()) {
				t.Errorf("Service = %q, want %q", s.table.Service, s.desc.FullName())
			}
			listed := map[string]int{}
			for _, m := range s.table.Methods {
				listed[m.Name]++
			}
			rpcs := s.desc.Methods()
			for i := range rpcs.Len() {
				name := fullName(s.desc, rpcs.Get(i))
				if n := listed[name]; n != 1 {
					t.Errorf("%s is listed %d times, want once", name, n)
				}
				delete(listed, name)
			}
			for name := range listed {
				t.Errorf("%s is listed but is not an RPC of %s", name, s.desc.FullName())
			}
		})
	}
}

// TestRoutes checks each method's route against what the gateway's routers
// need of the request: an account to route by, a page to concatenate.
func TestRoutes(t *testing.T) {
	for name, s := range services(t) {
		t.Run(name, func(t *testing.T) {
			for _, m := range s.table.Methods {
				md := s.desc.Methods().ByName(protoreflect.Name(m.Name[strings.LastIndexByte(m.Name, '/')+1:]))
				if md == nil {
					t.Fatalf("%s: no such RPC", m.Name)
				}
				in := md.Input().Fields()
				switch {
				case m.Route == methods.NotRouted:
					if !md.IsStreamingServer() || md.IsStreamingClient() {
						t.Errorf("%s: not routed, but only the logs (server streams) are read by consumers", m.Name)
					}
				case s.table.ByWorkspace:
					if m.Route != methods.ByWorkspace {
						t.Errorf("%s: route %v in a service split by workspace", m.Name, m.Route)
					}
				case m.Route == methods.ByWorkspace:
					t.Errorf("%s: routed by workspace in a service split by account", m.Name)
				case md.IsStreamingClient() || md.IsStreamingServer():
					t.Errorf("%s: a stream routed %v; the account router routes unary calls only", m.Name, m.Route)
				case m.Route == methods.ByAccount:
					if f := in.ByName("account_id"); f == nil || f.Kind() != protoreflect.StringKind {
						t.Errorf("%s: routed by account, but its request has no account_id", m.Name)
					}
				case m.Route == methods.ConcatPages:
					if f := in.ByName("page"); f == nil || f.Message() == nil || f.Message().FullName() != "cairn.common.v1.PageRequest" {
						t.Errorf("%s: pages concatenated, but its request has no page", m.Name)
					}
				}
				if m.Route == methods.ByWorkspace && in.ByName("workspace") == nil && !md.IsStreamingClient() {
					t.Errorf("%s: routed by workspace, but its request has no workspace", m.Name)
				}
			}
		})
	}
}

// httpRule is one rule of proto/cairn/http.yaml.
type httpRule struct {
	Selector           string     `yaml:"selector"`
	Get                string     `yaml:"get"`
	Post               string     `yaml:"post"`
	Put                string     `yaml:"put"`
	Patch              string     `yaml:"patch"`
	Delete             string     `yaml:"delete"`
	Body               string     `yaml:"body"`
	AdditionalBindings []httpRule `yaml:"additional_bindings"`
}

// TestRESTMatchesHTTPYAML checks the REST bindings against the file
// grpc-gateway's handlers are generated from.
func TestRESTMatchesHTTPYAML(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "proto", "cairn", "http.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		HTTP struct {
			Rules []httpRule `yaml:"rules"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]methods.REST{}
	for _, r := range doc.HTTP.Rules {
		if len(r.AdditionalBindings) > 0 {
			t.Errorf("%s: additional_bindings are not in the table", r.Selector)
		}
		var rest methods.REST
		for verb, path := range map[string]string{"GET": r.Get, "POST": r.Post, "PUT": r.Put, "PATCH": r.Patch, "DELETE": r.Delete} {
			if path == "" {
				continue
			}
			if rest.Verb != "" {
				t.Errorf("%s: two verbs", r.Selector)
			}
			rest = methods.REST{Verb: verb, Path: path, Body: r.Body}
		}
		i := strings.LastIndexByte(r.Selector, '.')
		name := "/" + r.Selector[:i] + "/" + r.Selector[i+1:]
		if _, dup := want[name]; dup {
			t.Errorf("%s: two rules", r.Selector)
		}
		want[name] = rest
	}
	if len(want) == 0 {
		t.Fatal("http.yaml has no rules")
	}
	for _, tb := range methods.Tables() {
		for _, m := range tb.Methods {
			if got := m.REST; got != want[m.Name] {
				t.Errorf("%s: REST = %+v, http.yaml says %+v", m.Name, got, want[m.Name])
			}
			delete(want, m.Name)
		}
	}
	for name := range want {
		t.Errorf("http.yaml binds %s, which no table lists", name)
	}
}

// TestPolicy checks each table's Policy against the roles the services
// assigned by hand before the tables existed (their Policy functions).
func TestPolicy(t *testing.T) {
	roles := func(svc string, byRole map[auth.Role][]string) auth.Policy {
		p := auth.Policy{}
		for role, names := range byRole {
			for _, n := range names {
				p["/"+svc+"/"+n] = role
			}
		}
		return p
	}
	want := map[string]struct {
		table methods.Table
		want  auth.Policy
	}{
		"ingestion": {methods.Ingestion, roles("cairn.ingestion.v1.IngestionService", map[auth.Role][]string{
			auth.RoleWrite:   {"Ingest", "IngestStream"},
			auth.RoleRead:    {"ListAccountEvents", "GetLogInfo"},
			auth.RoleAdmin:   {"DeleteSubject"},
			auth.RoleService: {"Subscribe"},
		})},
		"stages": {methods.Stages, roles("cairn.stages.v1.StagesService", map[auth.Role][]string{
			auth.RoleRead: {"GetJourney", "ListJourneyVersions", "ListJourneyTemplates", "ListJourneys", "GetReplay", "GetAccountJourney",
				"ListAccounts", "ListSignals", "GetFunnel", "GetMomentsOfTruth", "GetBuyingCommittee", "ValidateJourney", "GetStatus"},
			auth.RoleAdmin:   {"ApplyJourney", "ActivateJourney", "StartReplay"},
			auth.RoleService: {"Subscribe"},
		})},
		"health": {methods.Health, roles("cairn.health.v1.HealthService", map[auth.Role][]string{
			auth.RoleRead: {"ValidateModel", "GetModel", "ListModelVersions", "GetAccountHealth", "ListHealthHistory",
				"ListAccounts", "ListSignals", "Backtest", "GetStatus"},
			auth.RoleAdmin:   {"ApplyModel", "Rescore"},
			auth.RoleService: {"Subscribe"},
		})},
		"routing": {methods.Routing, roles("cairn.routing.v1.RoutingService", map[auth.Role][]string{
			auth.RoleRead: {"GetOwner", "ListOwners", "GetPool", "ListPools", "GetConfig", "ValidateConfig", "GetAssignment",
				"ListAssignments", "GetReport", "ListOwnerLoad", "GetAccountFit", "GetStatus"},
			auth.RoleWrite:   {"Qualify", "Handoff", "RecordTouch", "PauseSla", "ResumeSla"},
			auth.RoleAdmin:   {"UpsertOwner", "DeleteOwner", "UpsertPool", "DeletePool", "ApplyConfig", "Reassign"},
			auth.RoleService: {"Subscribe"},
		})},
		"plays": {methods.Plays, roles("cairn.plays.v1.PlaysService", map[auth.Role][]string{
			auth.RoleRead:  {"GetPlays", "ListTasks", "ListFirings", "ListDeliveries", "ListDestinations", "GetReplay", "GetStatus"},
			auth.RoleWrite: {"UpdateTask", "Redeliver"},
			auth.RoleAdmin: {"ApplyPlays", "StartReplay"},
		})},
	}
	for name, tc := range want {
		t.Run(name, func(t *testing.T) {
			got := methods.Policy(tc.table)
			if !maps.Equal(got, tc.want) {
				for _, k := range slices.Sorted(maps.Keys(tc.want)) {
					if got[k] != tc.want[k] {
						t.Errorf("%s: role %v, want %v", k, got[k], tc.want[k])
					}
				}
				for k := range got {
					if _, ok := tc.want[k]; !ok {
						t.Errorf("%s: listed with %v, want unlisted", k, got[k])
					}
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	for _, tb := range methods.Tables() {
		for _, m := range tb.Methods {
			if got, ok := methods.Lookup(m.Name); !ok || got != m {
				t.Errorf("Lookup(%q) = %+v, %v; want %+v", m.Name, got, ok, m)
			}
		}
	}
	hc, ok := methods.Lookup("/grpc.health.v1.Health/Check")
	if !ok || hc != methods.HealthCheck || hc.Route != methods.Broadcast {
		t.Errorf("Lookup(health check) = %+v, %v; want HealthCheck, a broadcast", hc, ok)
	}
	for _, name := range []string{"", "/x/Y", "GetFunnel", "/cairn.stages.v1.StagesService/", "/cairn.stages.v1.StagesService/Nope"} {
		if m, ok := methods.Lookup(name); ok {
			t.Errorf("Lookup(%q) = %+v, want none", name, m)
		}
	}
}

func TestRouteString(t *testing.T) {
	for r, want := range map[methods.Route]string{
		methods.NotRouted: "not routed", methods.ByAccount: "by account", methods.ByWorkspace: "by workspace",
		methods.AnyReplica: "any replica", methods.Broadcast: "broadcast", methods.ConcatPages: "concat pages",
		methods.Aggregate: "aggregate", methods.Route(42): "Route(42)", methods.Route(-1): "Route(-1)",
	} {
		if got := r.String(); got != want {
			t.Errorf("Route(%d).String() = %q, want %q", int(r), got, want)
		}
	}
}
