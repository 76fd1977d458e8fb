package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	fakes *fakes.Suite
	srv   *httptest.Server
	clock *clock.Manual
	reg   *prometheus.Registry
}

type envOptions struct {
	rate    float64
	burst   int
	maxBody int64
	origins []string
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	f := fakes.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clk := clock.NewManual(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	h, err := New(ctx, Config{
		Upstreams:   Upstreams{Ingestion: f.Conn, Stages: f.Conn, Health: f.Conn, Routing: f.Conn},
		Auth:        fakes.Keys{},
		Limiter:     web.NewRateLimiter(o.rate, o.burst, clk),
		CORSOrigins: o.origins,
		MaxBody:     o.maxBody,
		Registerer:  reg,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{fakes: f, srv: srv, clock: clk, reg: reg}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (e *env) do(t *testing.T, method, path, key string, body []byte, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func decodeError(t *testing.T, r response) web.Body {
	t.Helper()
	e, err := web.ParseBody(r.body)
	if err != nil {
		t.Fatalf("error body %q is not a google.rpc.Status: %v", r.body, err)
	}
	return e
}

func TestForwardsRESTCalls(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name     string
		path     string
		calls    *fakes.Calls
		wantBody string
	}{
		{"stages journey", "/v1/accounts/acme/journey", &e.fakes.Stages.Calls, `"stage":"onboarding"`},
		{"stages funnel", "/v1/funnel?cohort=2026-03", &e.fakes.Stages.Calls, `"conversionRate":0.667`},
		{"health", "/v1/accounts/acme/health", &e.fakes.Health.Calls, `"score":72.5`},
		{"routing", "/v1/assignments?state=ASSIGNMENT_STATE_OPEN", &e.fakes.Routing.Calls, `"ownerId":"olivia"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", tc.path, fakes.ReadKey, nil, map[string]string{"X-Request-Id": "req-" + strings.ReplaceAll(tc.name, " ", "-")})
			if r.code != http.StatusOK {
				t.Fatalf("status = %d, body %s", r.code, r.body)
			}
			if !bytes.Contains(r.body, []byte(tc.wantBody)) {
				t.Errorf("body %s lacks %s", r.body, tc.wantBody)
			}
			md, _ := tc.calls.Last()
			if got := md.Get("authorization"); len(got) == 0 || got[0] != "Bearer "+fakes.ReadKey {
				t.Errorf("upstream authorization = %q, want the caller's bearer key", got)
			}
			if got := md.Get("x-request-id"); len(got) == 0 || got[0] != r.header.Get("X-Request-Id") {
				t.Errorf("upstream x-request-id = %q, response header %q", got, r.header.Get("X-Request-Id"))
			}
			if tp := md.Get("traceparent"); len(tp) == 0 || !strings.Contains(tp[0], r.header.Get("X-Trace-Id")) {
				t.Errorf("upstream traceparent = %q, trace id %q", tp, r.header.Get("X-Trace-Id"))
			}
		})
	}
	_, req := e.fakes.Routing.Calls.Last()
	if lr, ok := req.(*routingv1.ListAssignmentsRequest); !ok || lr.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN {
		t.Errorf("routing request = %v, want state from the query string", req)
	}
}

func TestErrorShape(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name        string
		method      string
		path        string
		key         string
		wantStatus  int
		wantCode    codes.Code
		wantMessage string
		retryAfter  string
	}{
		{"missing key", "GET", "/v1/accounts/acme/journey", "", 401, codes.Unauthenticated, "Authorization: Bearer", ""},
		{"unknown key", "GET", "/v1/accounts/acme/journey", "nope", 401, codes.Unauthenticated, "not recognized", ""},
		{"not found", "GET", "/v1/accounts/missing/journey", fakes.ReadKey, 404, codes.NotFound, `account "missing" not found`, ""},
		{"invalid field", "GET", "/v1/accounts/bad!/journey", fakes.ReadKey, 400, codes.InvalidArgument, "account_id:", ""},
		{"internal hidden", "GET", "/v1/accounts/boom/journey", fakes.ReadKey, 500, codes.Internal, "internal error", ""},
		{"upstream exhausted", "GET", "/v1/accounts/slow/journey", fakes.ReadKey, 429, codes.ResourceExhausted, "too many reads", "2"},
		{"unimplemented upstream", "GET", "/v1/log", fakes.ReadKey, 501, codes.Unimplemented, "", ""},
		{"no such route", "GET", "/v1/nowhere", fakes.ReadKey, 404, codes.NotFound, "", ""},
		{"bad json body", "POST", "/v1/events:batch", fakes.WriteKey, 400, codes.InvalidArgument, "", ""},
		{"no such page", "GET", "/nowhere", "", 404, codes.NotFound, "no such page", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.method == "POST" {
				body = []byte(`{"events": [`)
			}
			r := e.do(t, tc.method, tc.path, tc.key, body, nil)
			if r.code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.code, tc.wantStatus, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			got := decodeError(t, r)
			if got.Code != tc.wantCode {
				t.Errorf("code = %v, want %v", got.Code, tc.wantCode)
			}
			if !strings.Contains(got.Message, tc.wantMessage) {
				t.Errorf("message %q lacks %q", got.Message, tc.wantMessage)
			}
			if got.RequestID == "" || got.RequestID != r.header.Get("X-Request-Id") {
				t.Errorf("requestId %q, header %q", got.RequestID, r.header.Get("X-Request-Id"))
			}
			if bytes.Contains(r.body, []byte("disk on fire")) || bytes.Contains(r.body, []byte("/var/lib")) {
				t.Errorf("internal detail leaked: %s", r.body)
			}
			if ra := r.header.Get("Retry-After"); ra != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", ra, tc.retryAfter)
			}
		})
	}
}

func TestRequestAndTraceIDs(t *testing.T) {
	e := newEnv(t, envOptions{})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name      string
		hdr       map[string]string
		wantID    string // "" means generated
		wantTrace string // "" means generated
	}{
		{"generated", nil, "", ""},
		{"caller ids kept", map[string]string{"X-Request-Id": "abc-123", "Traceparent": parent}, "abc-123", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"garbage replaced", map[string]string{"X-Request-Id": strings.Repeat("x", 200), "Traceparent": "00-zz-yy-01"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", "/healthz", "", nil, tc.hdr)
			id, trace := r.header.Get("X-Request-Id"), r.header.Get("X-Trace-Id")
			if tc.wantID != "" && id != tc.wantID {
				t.Errorf("X-Request-Id = %q, want %q", id, tc.wantID)
			}
			if tc.wantID == "" && len(id) != 32 {
				t.Errorf("generated X-Request-Id = %q, want 32 hex digits", id)
			}
			if tc.wantTrace != "" && trace != tc.wantTrace {
				t.Errorf("X-Trace-Id = %q, want %q", trace, tc.wantTrace)
			}
			if len(trace) != 32 {
				t.Errorf("X-Trace-Id = %q, want 32 hex digits", trace)
			}
			tp := r.header.Get("Traceparent")
			if !strings.HasPrefix(tp, "00-"+trace+"-") || tp == parent {
				t.Errorf("traceparent = %q: want trace %s with the gateway's own span", tp, trace)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, envOptions{origins: []string{"https://app.example.com"}})
	tests := []struct {
		name       string
		method     string
		path       string
		origin     string
		wantStatus int
		wantAllow  string
	}{
		{"allowed preflight", "OPTIONS", "/v1/funnel", "https://app.example.com", 204, "https://app.example.com"},
		{"allowed request", "GET", "/healthz", "https://app.example.com", 200, "https://app.example.com"},
		{"other origin", "GET", "/healthz", "https://evil.example", 200, ""},
		{"tracking from any site", "OPTIONS", "/v1/track", "https://shop.example", 204, "https://shop.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, "", nil, map[string]string{"Origin": tc.origin, "Access-Control-Request-Method": "GET"})
			if r.code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.code, tc.wantStatus, r.body)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tc.wantAllow {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantAllow)
			}
			if tc.wantAllow != "" && !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Errorf("Access-Control-Allow-Headers = %q lacks Authorization", r.header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, envOptions{maxBody: 1024})
	big := []byte(`{"events":[{"event":"` + strings.Repeat("a", 2048) + `"}]}`)
	for _, path := range []string{"/v1/events:batch", "/v1/batch", "/v1/track"} {
		t.Run(path, func(t *testing.T) {
			r := e.do(t, "POST", path, fakes.WriteKey, big, nil)
			if r.code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413; body %s", r.code, r.body)
			}
			if got := decodeError(t, r); got.Code != codes.InvalidArgument || !strings.Contains(got.Message, "1024") || len(got.Violations) != 1 {
				t.Errorf("error = %+v", got)
			}
		})
	}
	if n := e.fakes.Ingestion.Calls.Count(); n != 0 {
		t.Errorf("oversized bodies reached ingestion %d times", n)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	e := newEnv(t, envOptions{rate: 1, burst: 2})
	get := func(key string) response { return e.do(t, "GET", "/v1/accounts/acme/health", key, nil, nil) }
	for i := range 2 {
		if r := get(fakes.ReadKey); r.code != 200 {
			t.Fatalf("request %d within burst: status %d", i, r.code)
		}
	}
	r := get(fakes.ReadKey)
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("over burst: status %d Retry-After %q, want 429 and 1", r.code, r.header.Get("Retry-After"))
	}
	if got := decodeError(t, r); got.Code != codes.ResourceExhausted || got.RetryDelay != time.Second {
		t.Errorf("code = %v, retry %v", got.Code, got.RetryDelay)
	}
	if r := get(fakes.WriteKey); r.code == http.StatusTooManyRequests {
		t.Errorf("another key was limited by the first key's bucket")
	}
	e.clock.Advance(time.Second)
	if r := get(fakes.ReadKey); r.code != 200 {
		t.Errorf("after refill: status %d", r.code)
	}
}

func TestStaticAndHealthEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"openapi", "/openapi.json", 200, "application/json", `"swagger"`},
		{"openapi title", "/openapi.json", 200, "application/json", `"title": "Cairn API"`},
		{"openapi bearer scheme", "/openapi.json", 200, "application/json", `"name": "Authorization"`},
		{"docs", "/docs", 200, "text/html", "Cairn API"},
		{"dashboard", "/", 200, "text/html", "Cairn"},
		{"dashboard script", "/assets/app.js", 200, "text/javascript", "localStorage"},
		{"healthz", "/healthz", 200, "application/json", `"ok"`},
		{"readyz", "/readyz", 200, "application/json", `"ready"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", tc.path, "", nil, nil)
			if r.code != tc.wantStatus {
				t.Fatalf("status = %d; body %.200s", r.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type = %q, want %s", ct, tc.wantType)
			}
			if !bytes.Contains(r.body, []byte(tc.wantBody)) {
				t.Errorf("body lacks %q", tc.wantBody)
			}
			if tc.wantType == "text/html" && !strings.Contains(r.header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("page served without a script-src CSP: %q", r.header.Get("Content-Security-Policy"))
			}
		})
	}
}

func TestReadyzReportsUpstreamHealth(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.fakes.Status.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	r := e.do(t, "GET", "/readyz", "", nil, nil)
	if r.code != http.StatusServiceUnavailable || !bytes.Contains(r.body, []byte(`"NOT_SERVING"`)) {
		t.Fatalf("readyz = %d %s, want 503 naming NOT_SERVING", r.code, r.body)
	}
}

func TestMetricsUseRoutePatterns(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.do(t, "GET", "/v1/accounts/acme/journey", fakes.ReadKey, nil, nil)
	e.do(t, "GET", "/v1/accounts/other/journey", fakes.ReadKey, nil, nil)
	e.do(t, "GET", "/v1/accounts/missing/journey", fakes.ReadKey, nil, nil)
	got := map[string]float64{}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cairn_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["route"]+" "+labels["code"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"GET /v1/accounts/{account_id}/journey 200": 2,
		"GET /v1/accounts/{account_id}/journey 404": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("cairn_http_requests_total[%s] = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	f := fakes.Start(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no upstreams", Config{Auth: fakes.Keys{}}},
		{"no auth", Config{Upstreams: Upstreams{Ingestion: f.Conn, Stages: f.Conn, Health: f.Conn, Routing: f.Conn}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(context.Background(), tc.cfg); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}
