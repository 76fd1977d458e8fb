package web

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestFromError(t *testing.T) {
	badReq, _ := status.New(codes.InvalidArgument, "events[3].message_id: longer than 100 characters").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "events[3].message_id", Description: "longer than 100 characters"}},
	})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
		wantRetry  time.Duration
		wantDetail int
	}{
		{"invalid argument keeps field", badReq.Err(), 400, "INVALID_ARGUMENT", "events[3].message_id: longer than 100 characters", 0, 1},
		{"internal hidden", status.Error(codes.Internal, "bolt: /data/x.db corrupt"), 500, "INTERNAL", "internal error; quote request_id r1 when reporting it", 0, 0},
		{"unknown hidden", errors.New("dial tcp 10.0.0.1:7101: refused"), 500, "UNKNOWN", "internal error; quote request_id r1 when reporting it", 0, 0},
		{"unavailable hidden", status.Error(codes.Unavailable, "connection refused 127.0.0.1:7101"), 503, "UNAVAILABLE", "service temporarily unavailable; retry later", 0, 0},
		{"exhausted defaults retry", status.Error(codes.ResourceExhausted, "slow down"), 429, "RESOURCE_EXHAUSTED", "slow down", time.Second, 0},
		{"rate limited", RateLimited(2500 * time.Millisecond), 429, "RESOURCE_EXHAUSTED", "rate limit exceeded for this API key; retry in 3 s", 2500 * time.Millisecond, 1},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "INVALID_ARGUMENT", "request body larger than 10 bytes", 0, 0},
		{"wrapped too large", fmt.Errorf("read: %w", ErrTooLarge), 413, "INVALID_ARGUMENT", "request body too large", 0, 0},
		{"not found", status.Error(codes.NotFound, `account "a" not found`), 404, "NOT_FOUND", `account "a" not found`, 0, 0},
		{"permission", status.Error(codes.PermissionDenied, "permission denied"), 403, "PERMISSION_DENIED", "permission denied", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, retry := FromError("r1", tc.err)
			if got.HTTPStatus != tc.wantStatus || got.Code != tc.wantCode || got.Message != tc.wantMsg || got.RequestID != "r1" {
				t.Errorf("FromError = %+v, want %d %s %q", got, tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			if retry != tc.wantRetry {
				t.Errorf("retry = %v, want %v", retry, tc.wantRetry)
			}
			if len(got.Details) != tc.wantDetail {
				t.Errorf("details = %+v, want %d", got.Details, tc.wantDetail)
			}
		})
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
