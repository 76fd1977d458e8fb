package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestFromError(t *testing.T) {
	badReq, _ := status.New(codes.InvalidArgument, "events[3].message_id: longer than 100 characters").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "events[3].message_id", Description: "longer than 100 characters"}},
	})
	debug, _ := status.New(codes.FailedPrecondition, "journey j has no active version").WithDetails(&errdetails.DebugInfo{Detail: "/srv/stages.db: bucket j"})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   codes.Code
		wantMsg    string
		wantRetry  time.Duration
		wantField  string
		wantTypes  int // details, RequestInfo included
	}{
		{"invalid argument keeps field", badReq.Err(), 400, codes.InvalidArgument, "events[3].message_id: longer than 100 characters", 0, "events[3].message_id", 2},
		{"internal hidden", status.Error(codes.Internal, "bolt: /data/x.db corrupt"), 500, codes.Internal, "internal error; quote request id r1 when reporting it", 0, "", 1},
		{"unknown hidden", errors.New("dial tcp 10.0.0.1:7101: refused"), 500, codes.Unknown, "internal error; quote request id r1 when reporting it", 0, "", 1},
		{"unavailable hidden", status.Error(codes.Unavailable, "connection refused 127.0.0.1:7101"), 503, codes.Unavailable, "service temporarily unavailable; retry later", 0, "", 1},
		{"exhausted defaults retry", status.Error(codes.ResourceExhausted, "slow down"), 429, codes.ResourceExhausted, "slow down", time.Second, "", 2},
		{"rate limited", RateLimited(2500 * time.Millisecond), 429, codes.ResourceExhausted, "rate limit exceeded for this API key; retry in 3 s", 2500 * time.Millisecond, "", 2},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, codes.InvalidArgument, "request body larger than 10 bytes", 0, "body", 2},
		{"wrapped too large", fmt.Errorf("read: %w", ErrTooLarge), 413, codes.InvalidArgument, "request body too large", 0, "body", 2},
		{"not found", status.Error(codes.NotFound, `account "a" not found`), 404, codes.NotFound, `account "a" not found`, 0, "", 1},
		{"permission", status.Error(codes.PermissionDenied, "permission denied"), 403, codes.PermissionDenied, "permission denied", 0, "", 1},
		{"debug info dropped", debug.Err(), 400, codes.FailedPrecondition, "journey j has no active version", 0, "", 1},
		{"query parameter named", status.Error(codes.InvalidArgument, `query parameter band: unknown value "x"; want one of a, b`), 400, codes.InvalidArgument, `query parameter band: unknown value "x"; want one of a, b`, 0, "band", 2},
		{"http status kept", &runtime.HTTPStatusError{HTTPStatus: 405, Err: status.Error(codes.Unimplemented, "method PATCH is not allowed")}, 405, codes.Unimplemented, "method PATCH is not allowed", 0, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FromError("r1", tc.err)
			if got.HTTPStatus != tc.wantStatus || got.Code() != tc.wantCode || got.Message() != tc.wantMsg {
				t.Errorf("FromError = %d %v %q, want %d %v %q", got.HTTPStatus, got.Code(), got.Message(), tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			if got.RetryAfter != tc.wantRetry {
				t.Errorf("retry = %v, want %v", got.RetryAfter, tc.wantRetry)
			}
			if len(got.Status.GetDetails()) != tc.wantTypes {
				t.Errorf("details = %v, want %d", got.Status.GetDetails(), tc.wantTypes)
			}
			b, err := MarshalMessage(got.Status)
			if err != nil {
				t.Fatal(err)
			}
			body, err := ParseBody(b)
			if err != nil {
				t.Fatal(err)
			}
			if body.RequestID != "r1" || body.RetryDelay != tc.wantRetry {
				t.Errorf("body %s: request id %q, retry %v", b, body.RequestID, body.RetryDelay)
			}
			if tc.wantField != "" && (len(body.Violations) != 1 || body.Violations[0].GetField() != tc.wantField) {
				t.Errorf("body %s: violations %v, want one for %s", b, body.Violations, tc.wantField)
			}
			if bytes.Contains(b, []byte("/data/")) || bytes.Contains(b, []byte("10.0.0.1")) || bytes.Contains(b, []byte("/srv/")) {
				t.Errorf("body %s leaks an internal detail", b)
			}
		})
	}
}

// TestErrorBodyShape holds the error body to google.rpc.Status as
// grpc-gateway writes it: an integer code, camelCase detail fields, "@type".
func TestErrorBodyShape(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/x", nil)
	Identify(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, RateLimited(1500*time.Millisecond))
	})).ServeHTTP(w, r)
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["code"] != float64(codes.ResourceExhausted) || raw["message"] == "" || len(raw) != 3 {
		t.Fatalf("body %s: want code 8, message and details only", w.Body)
	}
	want := map[string]string{
		"type.googleapis.com/google.rpc.RetryInfo":   "retryDelay",
		"type.googleapis.com/google.rpc.RequestInfo": "requestId",
	}
	for _, d := range raw["details"].([]any) {
		d := d.(map[string]any)
		field, ok := want[d["@type"].(string)]
		if !ok || d[field] == nil {
			t.Errorf("detail %v unexpected", d)
		}
		delete(want, d["@type"].(string))
	}
	if len(want) != 0 {
		t.Errorf("body %s lacks %v", w.Body, want)
	}
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" {
		t.Errorf("status %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if body, _ := ParseBody(w.Body.Bytes()); body.RequestID != w.Header().Get("X-Request-Id") {
		t.Errorf("request id %q, header %q", body.RequestID, w.Header().Get("X-Request-Id"))
	}
}

func TestRateLimiter(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := NewRateLimiter(2, 2, clk)
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		wantOK  bool
		wait    time.Duration
	}{
		{"first", 0, "a", true, 0},
		{"burst", 0, "a", true, 0},
		{"empty", 0, "a", false, 500 * time.Millisecond},
		{"other key unaffected", 0, "b", true, 0},
		{"half refilled", 250 * time.Millisecond, "a", false, 250 * time.Millisecond},
		{"refilled", 250 * time.Millisecond, "a", true, 0},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		ok, wait := l.Allow(s.key)
		if ok != s.wantOK || wait != s.wait {
			t.Errorf("%s: Allow = %v, %v; want %v, %v", s.name, ok, wait, s.wantOK, s.wait)
		}
	}
	if ok, _ := NewRateLimiter(0, 0, clk).Allow("x"); !ok {
		t.Error("rate 0 should disable limiting")
	}
}

func TestRateLimiterEvictsIdleKeys(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := NewRateLimiter(1, 1, clk)
	for i := range maxLimiters {
		l.Allow(fmt.Sprint(i))
	}
	clk.Advance(time.Second) // every bucket is full again, so all are idle
	l.Allow("new")
	if n := len(l.keys); n != 1 {
		t.Errorf("after eviction %d limiters remain, want 1", n)
	}
}

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"future version with extra field", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", true},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"zero trace", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"upper case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"short", "00-4bf9-00f0-01", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := parseTraceparent(tc.in); ok != tc.ok {
				t.Errorf("parseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got, ok := BearerToken(tc.in); got != tc.want || ok != tc.ok {
				t.Errorf("BearerToken(%q) = %q, %v", tc.in, got, tc.ok)
			}
		})
	}
}
