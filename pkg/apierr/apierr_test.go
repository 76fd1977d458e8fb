package apierr_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/apierr"
)

func TestStatus(t *testing.T) {
	secret := errors.New("bucket accounts/p00003: page 81 corrupt")
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		msg      string
		fields   []string // BadRequest field violations
		retry    time.Duration
		logged   bool
		leakFree bool // the message must not carry the wrapped chain
	}{
		{name: "nil", err: nil, code: codes.OK},
		{name: "field", err: apierr.Field("owner.owner_id", "longer than %d characters", 256), code: codes.InvalidArgument,
			msg: "owner.owner_id: longer than 256 characters", fields: []string{"owner.owner_id"}},
		{name: "wrapped field", err: fmt.Errorf("apply: %w", apierr.Field("stages[0].entry", "undeclared reference")),
			code: codes.InvalidArgument, msg: "stages[0].entry: undeclared reference", fields: []string{"stages[0].entry"}},
		{name: "fields", err: apierr.Fields("journey", []apierr.Violation{{Field: "id", Description: "required"}, {Field: "stages", Description: "empty"}}),
			code: codes.InvalidArgument, msg: "journey: id: required; stages: empty", fields: []string{"id", "stages"}},
		{name: "no fields is no error", err: apierr.Fields("journey", nil), code: codes.OK},
		{name: "invalid sentinel", err: fmt.Errorf("%w: window.end before window.start", apierr.ErrInvalid), code: codes.InvalidArgument,
			msg: "invalid argument: window.end before window.start"},
		{name: "not found", err: apierr.NotFound("journey %q", "onboarding"), code: codes.NotFound, msg: `journey "onboarding"`},
		{name: "not found sentinel wrapped", err: fmt.Errorf("get model %q v2: %w", "default", apierr.ErrNotFound), code: codes.NotFound,
			msg: `get model "default" v2: not found`},
		{name: "already exists", err: apierr.AlreadyExists("replay %q", "r1"), code: codes.AlreadyExists, msg: `replay "r1"`},
		{name: "precondition", err: apierr.FailedPrecondition("journey %q has no active version", "j"), code: codes.FailedPrecondition,
			msg: `journey "j" has no active version`},
		{name: "unavailable", err: fmt.Errorf("write: %w: disk full", apierr.ErrUnavailable), code: codes.Unavailable, retry: apierr.UnavailableRetry, logged: true},
		{name: "canceled", err: fmt.Errorf("read: %w", context.Canceled), code: codes.Canceled, msg: "request canceled"},
		{name: "deadline", err: fmt.Errorf("read: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded, msg: "request deadline exceeded"},
		{name: "status passes", err: status.Error(codes.PermissionDenied, "workspace \"rival\""), code: codes.PermissionDenied, msg: "workspace \"rival\""},
		{name: "exhausted", err: apierr.Exhausted(2*time.Second, "ingestion is at its in-flight limit"), code: codes.ResourceExhausted,
			msg: "ingestion is at its in-flight limit", retry: 2 * time.Second},
		{name: "internal", err: fmt.Errorf("rescore: %w", secret), code: codes.Internal, msg: "internal error", logged: true, leakFree: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			got := apierr.Status(logger, "/cairn.test.v1.T/M", tc.err)
			st := status.Convert(got)
			if st.Code() != tc.code {
				t.Fatalf("code = %v, want %v (%v)", st.Code(), tc.code, got)
			}
			if tc.msg != "" && st.Message() != tc.msg {
				t.Errorf("message = %q, want %q", st.Message(), tc.msg)
			}
			if tc.leakFree && strings.Contains(st.Message(), "corrupt") {
				t.Errorf("message %q leaks the internal error", st.Message())
			}
			var fields []string
			var retry time.Duration
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.BadRequest:
					for _, v := range d.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				case *errdetails.RetryInfo:
					retry = d.GetRetryDelay().AsDuration()
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("field violations = %v, want %v", fields, tc.fields)
			}
			if retry != tc.retry {
				t.Errorf("retry = %v, want %v", retry, tc.retry)
			}
			if logged := logs.Len() > 0; logged != tc.logged {
				t.Errorf("logged = %v, want %v (%s)", logged, tc.logged, logs.String())
			}
			if tc.logged && tc.leakFree && !strings.Contains(logs.String(), "corrupt") {
				t.Errorf("the log lacks the internal error: %s", logs.String())
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		v        string
		required bool
		want     string // "" for no error
	}{
		{"acme", true, ""},
		{"", false, ""},
		{"", true, "account_id: required"},
		{strings.Repeat("a", apierr.MaxID), true, ""},
		{strings.Repeat("a", apierr.MaxID+1), true, "account_id: longer than 256 characters"},
		{"a\x00b", true, "account_id: contains NUL"},
		{"\xff\xfe", true, "account_id: not valid UTF-8"},
	}
	for _, tc := range tests {
		err := apierr.CheckID("account_id", tc.v, tc.required)
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, apierr.ErrInvalid) {
				t.Errorf("CheckID(%q): %v does not match ErrInvalid", tc.v, err)
			}
		}
		if got != tc.want {
			t.Errorf("CheckID(%q, %v) = %q, want %q", tc.v, tc.required, got, tc.want)
		}
	}
}
