package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
	"github.com/cairn-dev/cairn/services/gateway/internal/tracking"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Request strings that make scriptConn fail the call.
const (
	triggerMissing = "missing-thing"
	triggerInvalid = "invalid-thing"
)

// scriptConn answers every unary call of every service, recording the
// request: NotFound when a string of the request is triggerMissing,
// InvalidArgument with a field violation when one is triggerInvalid, else
// an empty reply whose page (for lists) says more follow and, when
// page_size is 3 or 4, a total of 3 or 0; otherwise the total is unknown.
type scriptConn struct {
	mu   sync.Mutex
	last map[string]proto.Message
}

func (c *scriptConn) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	req := args.(proto.Message)
	c.mu.Lock()
	c.last[method] = proto.Clone(req)
	c.mu.Unlock()
	switch {
	case holds(req.ProtoReflect(), triggerMissing):
		return status.Errorf(codes.NotFound, "thing %q not found", triggerMissing)
	case holds(req.ProtoReflect(), triggerInvalid):
		st, _ := status.New(codes.InvalidArgument, "thing: bad").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "thing", Description: "bad"}},
		})
		return st.Err()
	}
	out := reply.(proto.Message).ProtoReflect()
	if f := out.Descriptor().Fields().ByName("page"); f != nil && f.Message().FullName() == "cairn.common.v1.PageResponse" {
		pr := &commonv1.PageResponse{NextPageToken: "next", TotalSize: -1}
		if in := pageField(req); in != nil {
			switch req.ProtoReflect().Get(in).Message().Interface().(*commonv1.PageRequest).GetPageSize() {
			case 3:
				pr.TotalSize = 3
			case 4:
				pr.TotalSize = 0
			}
		}
		out.Set(f, protoreflect.ValueOfMessage(pr.ProtoReflect()))
	}
	return nil
}

func (c *scriptConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams")
}

func (c *scriptConn) lastRequest(method string) proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[method]
}

// holds reports whether a string field of m, at any depth, is s.
func holds(m protoreflect.Message, s string) bool {
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() || fd.IsMap():
		case fd.Kind() == protoreflect.StringKind:
			found = v.String() == s
		case fd.Message() != nil:
			found = holds(v.Message(), s)
		}
		return !found
	})
	return found
}

// route is one REST binding of pkg/methods (checked against
// proto/cairn/http.yaml by its own tests).
type restRoute struct {
	method methods.Method
	input  protoreflect.MessageDescriptor
}

func restRoutes(t *testing.T) []restRoute {
	t.Helper()
	var out []restRoute
	for _, tbl := range methods.Tables() {
		for _, m := range tbl.Methods {
			if m.REST.Verb == "" {
				continue
			}
			svc, name, _ := strings.Cut(strings.TrimPrefix(m.Name, "/"), "/")
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
			if err != nil {
				t.Fatalf("%s: %v", m.Name, err)
			}
			out = append(out, restRoute{method: m, input: d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name)).Input()})
		}
	}
	if len(out) < 45 {
		t.Fatalf("only %d REST routes found", len(out))
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([a-z_.]+)\}`)

// fieldOf resolves a proto field path ("owner.owner_id") on md.
func fieldOf(md protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for part := range strings.SplitSeq(path, ".") {
		if md == nil {
			return nil
		}
		if fd = md.Fields().ByName(protoreflect.Name(part)); fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

// request builds a call of r that carries trigger in a string field: a
// path parameter when one is a string, else the first top-level string
// field, in the query (no body) or the JSON body.
func (r restRoute) request(trigger string) (method, target string, body string) {
	placed := false
	path := pathParam.ReplaceAllStringFunc(r.method.REST.Path, func(p string) string {
		fd := fieldOf(r.input, p[1:len(p)-1])
		if fd != nil && fd.Kind() == protoreflect.StringKind && !placed {
			placed = true
			return url.PathEscape(trigger)
		}
		if fd != nil && fd.Kind() == protoreflect.StringKind {
			return "a1"
		}
		return "1"
	})
	body = ""
	if r.method.REST.Body != "" {
		body = "{}"
	}
	if !placed {
		fields := r.input.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Kind() != protoreflect.StringKind || fd.IsList() {
				continue
			}
			if r.method.REST.Body == "*" {
				body = fmt.Sprintf(`{%q: %q}`, fd.JSONName(), trigger)
			} else {
				path += "?" + fd.JSONName() + "=" + url.QueryEscape(trigger)
			}
			break
		}
	}
	return r.method.REST.Verb, path, body
}

type conventionsEnv struct {
	h    http.Handler
	conn *scriptConn
}

func newConventionsEnv(t *testing.T) *conventionsEnv {
	t.Helper()
	conn := &scriptConn{last: map[string]proto.Message{}}
	h, err := New(t.Context(), Config{
		Upstreams: Upstreams{Ingestion: conn, Stages: conn, Health: conn, Routing: conn, Plays: conn},
		Auth:      fakes.Keys{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &conventionsEnv{h: h, conn: conn}
}

func (e *conventionsEnv) do(method, target, body string) *httptest.ResponseRecorder {
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, target, rd)
	req.Header.Set("Authorization", "Bearer "+fakes.WriteKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// checkErrorBody holds an error answer to google.rpc.Status: an integer
// code, a message, a RequestInfo matching X-Request-Id, and a field
// violation for fieldWanted when given.
func checkErrorBody(t *testing.T, w *httptest.ResponseRecorder, wantHTTP int, wantCode codes.Code, fieldWanted string) {
	t.Helper()
	if w.Code != wantHTTP {
		t.Fatalf("status %d, want %d: %s", w.Code, wantHTTP, w.Body)
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	for k := range raw {
		if k != "code" && k != "message" && k != "details" {
			t.Errorf("body %s has field %q; google.rpc.Status has code, message, details", w.Body, k)
		}
	}
	if c, ok := raw["code"].(float64); !ok || codes.Code(c) != wantCode {
		t.Errorf("body %s: code %v, want the integer %d", w.Body, raw["code"], wantCode)
	}
	b, err := web.ParseBody(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if b.Message == "" || b.RequestID == "" || b.RequestID != w.Header().Get("X-Request-Id") {
		t.Errorf("body %s: message %q, requestId %q, X-Request-Id %q", w.Body, b.Message, b.RequestID, w.Header().Get("X-Request-Id"))
	}
	if fieldWanted != "" {
		found := false
		for _, v := range b.Violations {
			found = found || v.GetField() == fieldWanted
		}
		if !found {
			t.Errorf("body %s: no field violation for %q", w.Body, fieldWanted)
		}
	}
	if strings.Contains(w.Body.String(), "rpc error:") {
		t.Errorf("body %s holds a Go error chain", w.Body)
	}
}

// TestEveryRouteErrors: every REST route answers a bad request and a
// missing resource with google.rpc.Status bodies.
func TestEveryRouteErrors(t *testing.T) {
	e := newConventionsEnv(t)
	for _, r := range restRoutes(t) {
		t.Run(r.method.Name, func(t *testing.T) {
			verb, target, body := r.request(triggerInvalid)
			checkErrorBody(t, e.do(verb, target, body), 400, codes.InvalidArgument, "thing")
			verb, target, body = r.request(triggerMissing)
			checkErrorBody(t, e.do(verb, target, body), 404, codes.NotFound, "")
		})
	}
}

// TestEveryRouteAnswers: a successful answer leaves unset fields out, and
// a list's page has nextPageToken and a totalSize that is a number when
// known and absent when not.
func TestEveryRouteAnswers(t *testing.T) {
	e := newConventionsEnv(t)
	for _, r := range restRoutes(t) {
		t.Run(r.method.Name, func(t *testing.T) {
			verb, target, body := r.request("a1")
			for _, size := range []int{0, 3, 4} {
				target := target
				paged := r.input.Fields().ByName("page") != nil && r.method.REST.Body == ""
				if paged && size > 0 {
					target += map[bool]string{true: "&", false: "?"}[strings.Contains(target, "?")] + fmt.Sprintf("page.pageSize=%d", size)
				}
				w := e.do(verb, target, body)
				if w.Code != 200 {
					t.Fatalf("%s %s: status %d: %s", verb, target, w.Code, w.Body)
				}
				var raw map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
					t.Fatal(err)
				}
				page, hasPage := raw["page"].(map[string]any)
				delete(raw, "page")
				if len(raw) != 0 {
					t.Errorf("%s: unset fields written: %s", target, w.Body)
				}
				if !hasPage {
					if paged {
						t.Errorf("%s: no page in %s", target, w.Body)
					}
					return
				}
				if page["nextPageToken"] != "next" {
					t.Errorf("%s: nextPageToken %v", target, page["nextPageToken"])
				}
				total, known := page["totalSize"]
				switch size {
				case 0:
					if known {
						t.Errorf("%s: unknown totalSize written as %v", target, total)
					}
				case 3, 4:
					if want := float64(size % 4); total != want {
						t.Errorf("%s: totalSize %#v, want the number %v", target, total, want)
					}
				}
			}
		})
	}
}

// enumParam is a query parameter of a GET route that sets an enum field.
type enumParam struct {
	name string // JSON name, as in the OpenAPI document
	fd   protoreflect.FieldDescriptor
}

func enumParams(r restRoute) []enumParam {
	if r.method.REST.Body != "" {
		return nil
	}
	var out []enumParam
	fields := r.input.Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Kind() == protoreflect.EnumKind {
			out = append(out, enumParam{fd.JSONName(), fd})
		}
	}
	return out
}

// TestEnumQueryParameters: every enum filter of every route takes each
// value's short form and full name in any case, and refuses an unknown
// value naming the parameter and the value.
func TestEnumQueryParameters(t *testing.T) {
	e := newConventionsEnv(t)
	count := 0
	for _, r := range restRoutes(t) {
		for _, p := range enumParams(r) {
			count++
			t.Run(r.method.Name+"/"+p.name, func(t *testing.T) {
				verb, target, _ := r.request("a1")
				sep := map[bool]string{true: "&", false: "?"}[strings.Contains(target, "?")]
				values := p.fd.Enum().Values()
				for i := range values.Len() {
					ev := values.Get(i)
					for _, form := range []string{web.ShortName(ev), string(ev.Name()), strings.ToUpper(web.ShortName(ev)), strings.ToLower(string(ev.Name()))} {
						w := e.do(verb, target+sep+p.name+"="+url.QueryEscape(form), "")
						if w.Code != 200 {
							t.Fatalf("%s=%s: status %d: %s", p.name, form, w.Code, w.Body)
						}
						got := e.conn.lastRequest(r.method.Name).ProtoReflect().Get(p.fd)
						if p.fd.IsList() {
							if got.List().Len() != 1 || got.List().Get(0).Enum() != ev.Number() {
								t.Errorf("%s=%s: upstream got %v, want [%s]", p.name, form, got, ev.Name())
							}
						} else if got.Enum() != ev.Number() {
							t.Errorf("%s=%s: upstream got %v, want %s", p.name, form, got.Enum(), ev.Name())
						}
					}
				}
				w := e.do(verb, target+sep+p.name+"=no_such_value", "")
				checkErrorBody(t, w, 400, codes.InvalidArgument, p.name)
				if b, _ := web.ParseBody(w.Body.Bytes()); !strings.Contains(b.Message, `"no_such_value"`) || !strings.Contains(b.Message, web.ShortName(values.Get(values.Len()-1))) {
					t.Errorf("message %q does not name the value and the accepted ones", b.Message)
				}
			})
		}
	}
	if count < 5 {
		t.Fatalf("only %d enum query parameters found", count)
	}
}

// TestQueryParameterErrors: a parameter that does not parse is refused
// naming it, with a plain-language reason.
func TestQueryParameterErrors(t *testing.T) {
	e := newConventionsEnv(t)
	tests := []struct {
		target, field, msg string
	}{
		{"/v1/health/accounts?band=at-risk-ish", "band", `query parameter band: unknown value "at-risk-ish"; want one of healthy, neutral, at_risk`},
		{"/v1/health/accounts?page.pageSize=ten", "page.pageSize", `query parameter page.pageSize: "ten" is not a 32-bit integer`},
		{"/v1/health/accounts?renewalWindow=1e3", "renewalWindow", `query parameter renewalWindow: "1e3" is not a 32-bit integer`},
		{"/v1/health/accounts?band=at_risk&band=healthy", "band", "query parameter band: given more than once"},
		{"/v1/health/accounts?page.pageSize=1&page.page_size=2", "page.page_size", "query parameter page.page_size: sets the same field as page.pageSize"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			w := e.do("GET", tc.target, "")
			checkErrorBody(t, w, 400, codes.InvalidArgument, tc.field)
			if b, _ := web.ParseBody(w.Body.Bytes()); b.Message != tc.msg {
				t.Errorf("message %q, want %q", b.Message, tc.msg)
			}
		})
	}
}

// TestEveryErrorIsAStatus: errors the gateway makes itself, outside the
// REST routes, have the same shape.
func TestEveryErrorIsAStatus(t *testing.T) {
	e := newConventionsEnv(t)
	tests := []struct {
		name         string
		method, path string
		key          string
		hdr          [2]string
		wantHTTP     int
		wantCode     codes.Code
		field        string
	}{
		{"no key", "GET", "/v1/funnel", "", [2]string{}, 401, codes.Unauthenticated, ""},
		{"unknown key", "GET", "/v1/funnel", "nope", [2]string{}, 401, codes.Unauthenticated, ""},
		{"unknown REST path", "GET", "/v1/no/such/thing", fakes.ReadKey, [2]string{}, 404, codes.NotFound, ""},
		{"unknown page", "GET", "/no/such/page", "", [2]string{}, 404, codes.NotFound, ""},
		{"method not allowed", "DELETE", "/v1/funnel", fakes.ReadKey, [2]string{}, 405, codes.Unimplemented, ""},
		{"query not UTF-8", "GET", "/v1/funnel?segment=%ff", fakes.ReadKey, [2]string{}, 400, codes.InvalidArgument, "segment"},
		{"tracking without key", "POST", "/v1/track", "", [2]string{}, 401, codes.Unauthenticated, ""},
		{"tracking unparseable", "POST", "/v1/track", fakes.WriteKey, [2]string{}, 400, codes.InvalidArgument, "body"},
		{"tracking read key", "POST", "/v1/batch", fakes.ReadKey, [2]string{}, 403, codes.PermissionDenied, ""},
		{"tracking unknown encoding", "POST", "/v1/batch", fakes.WriteKey, [2]string{"Content-Encoding", "br"}, 400, codes.InvalidArgument, "body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := "[1"
			if tc.name == "tracking without key" {
				body = `{"userId": "u", "event": "x"}`
			}
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(body))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			if tc.hdr[0] != "" {
				req.Header.Set(tc.hdr[0], tc.hdr[1])
			}
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, req)
			checkErrorBody(t, w, tc.wantHTTP, tc.wantCode, tc.field)
		})
	}
}

// TestOpenAPIDocument: /openapi.json lists every REST route and every
// tracking endpoint, says 64-bit integers are numbers and lists the short
// forms of enum query parameters.
func TestOpenAPIDocument(t *testing.T) {
	e := newConventionsEnv(t)
	w := e.do("GET", "/openapi.json", "")
	var doc struct {
		Info  struct{ Description string }
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string
				In   string
				Enum []string
			}
			Responses map[string]any
		}
		Definitions map[string]struct {
			Properties map[string]struct {
				Type   string
				Format string
			}
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range tracking.Paths() {
		op, ok := doc.Paths["/v1/"+p]["post"]
		if !ok || op.Responses["200"] == nil || op.Responses["default"] == nil {
			t.Errorf("/v1/%s: missing or incomplete in /openapi.json", p)
		}
	}
	for _, r := range restRoutes(t) {
		// protoc-gen-openapiv2 names path parameters by their JSON names.
		path := pathParam.ReplaceAllStringFunc(r.method.REST.Path, func(p string) string {
			names := strings.Split(p[1:len(p)-1], ".")
			jsonNames := make([]string, len(names))
			for i := range names {
				jsonNames[i] = fieldOf(r.input, strings.Join(names[:i+1], ".")).JSONName()
			}
			return "{" + strings.Join(jsonNames, ".") + "}"
		})
		if _, ok := doc.Paths[path][strings.ToLower(r.method.REST.Verb)]; !ok {
			t.Errorf("%s %s missing", r.method.REST.Verb, path)
		}
	}
	if ts := doc.Definitions["v1PageResponse"].Properties["totalSize"]; ts.Type != "integer" {
		t.Errorf("totalSize is %+v, want an integer", ts)
	}
	for name, d := range doc.Definitions {
		for p, s := range d.Properties {
			if s.Type == "string" && (s.Format == "int64" || s.Format == "uint64") {
				t.Errorf("%s.%s: a 64-bit integer declared as a string", name, p)
			}
		}
	}
	var band []string
	for _, p := range doc.Paths["/v1/health/accounts"]["get"].Parameters {
		if p.Name == "band" {
			band = p.Enum
		}
	}
	if !strings.Contains(strings.Join(band, ","), "at_risk") || !strings.Contains(strings.Join(band, ","), "BAND_AT_RISK") {
		t.Errorf("band enum %v lacks the short or the full form", band)
	}
	if !strings.Contains(doc.Info.Description, "google.rpc.Status") {
		t.Errorf("description does not document the error shape")
	}
}
