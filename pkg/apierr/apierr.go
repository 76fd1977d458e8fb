// Package apierr is the one mapping from Cairn's errors to gRPC status.
//
// Use cases return plain Go errors built here (or wrapping the sentinels
// here) and never import grpc/status; the server interceptor installed by
// pkg/server turns them into a status once, at the edge, with the right code
// and details. Anything it does not recognise is an internal error: it is
// logged in full and the client sees only "internal error", so no internal
// error chain ever reaches a caller.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Sentinels for the codes a use case may mean. Wrap them with %w (or use
// the constructors below) so that the message says what was not found or
// which precondition failed.
var (
	// ErrInvalid marks a client error; FieldError and Violations match it.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound maps to NotFound.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists maps to AlreadyExists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition maps to FailedPrecondition.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnavailable maps to Unavailable: the request may succeed later
	// as it stands (a storage write failed, an upstream is down).
	ErrUnavailable = errors.New("unavailable")
	// ErrOutOfRange maps to OutOfRange: an offset before a log's first
	// retained record or past its head.
	ErrOutOfRange = errors.New("out of range")
)

// Violation is one bad field of a request.
type Violation struct {
	// Field is the request field's path, e.g. "owner.owner_id" or
	// "stages[2].entry" (for definitions, the YAML path).
	Field string
	// Description says what is wrong, e.g. "required".
	Description string
}

// FieldError is a client error about one or more fields. It maps to
// InvalidArgument with a google.rpc.BadRequest detail listing every
// violation, so that REST and gRPC clients can point at each field.
type FieldError struct {
	// Prefix, when set, starts the message (e.g. "journey").
	Prefix string
	// Violations lists the bad fields; at least one.
	Violations []Violation
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Prefix != "" {
		b.WriteString(e.Prefix)
		b.WriteString(": ")
	}
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) hold for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Field returns a FieldError for one field, its description formatted as by
// fmt.Sprintf.
func Field(field, format string, args ...any) error {
	return &FieldError{Violations: []Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// Fields returns a FieldError listing every violation (nil when there are
// none), with an optional message prefix.
func Fields(prefix string, vs []Violation) error {
	if len(vs) == 0 {
		return nil
	}
	return &FieldError{Prefix: prefix, Violations: vs}
}

// NotFound returns an error that maps to NotFound with the formatted message.
func NotFound(format string, args ...any) error { return wrap(ErrNotFound, format, args) }

// AlreadyExists returns an error that maps to AlreadyExists.
func AlreadyExists(format string, args ...any) error { return wrap(ErrAlreadyExists, format, args) }

// FailedPrecondition returns an error that maps to FailedPrecondition.
func FailedPrecondition(format string, args ...any) error {
	return wrap(ErrFailedPrecondition, format, args)
}

// Invalid returns a client error that names no single field; prefer Field.
func Invalid(format string, args ...any) error { return wrap(ErrInvalid, format, args) }

// OutOfRange returns an error that maps to OutOfRange.
func OutOfRange(format string, args ...any) error { return wrap(ErrOutOfRange, format, args) }

// kindError carries a sentinel and the message the client sees.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func wrap(kind error, format string, args []any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Exhausted returns a ResourceExhausted status error carrying RetryInfo, so
// that a client knows when to try again.
func Exhausted(retryAfter time.Duration, format string, args ...any) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(format, args...))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
		st = d
	}
	return st.Err()
}

// UnavailableRetry is the retry delay sent with Unavailable: long enough for
// an operator to free space or a peer to restart, short enough that an SDK
// that honours it does not lose much time.
const UnavailableRetry = 5 * time.Second

// MaxID is the longest id (workspace, account, journey, owner...) Cairn
// accepts, in bytes.
const MaxID = 256

// CheckID refuses an id that is missing (when required), longer than MaxID,
// not valid UTF-8 or holds a NUL byte (ids are joined with NUL in store
// keys). The error names field.
func CheckID(field, v string, required bool) error {
	switch {
	case v == "":
		if required {
			return Field(field, "required")
		}
		return nil
	case len(v) > MaxID:
		return Field(field, "longer than %d characters", MaxID)
	case !utf8.ValidString(v):
		return Field(field, "not valid UTF-8")
	case strings.IndexByte(v, 0) >= 0:
		return Field(field, "contains NUL")
	}
	return nil
}

// Status returns err as a gRPC status error. nil stays nil; an error that
// already carries a status (or wraps one) passes through. An error it does
// not recognise is logged to logger with method and becomes Internal with
// the bare message "internal error".
func Status(logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok || st.Code() != codes.Unknown {
		// A status made deeper down (by a gRPC client call, or Exhausted)
		// already says what the client should hear.
		return st.Err()
	}
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		br := &errdetails.BadRequest{}
		for _, v := range fe.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		st := status.New(codes.InvalidArgument, fe.Error())
		if d, derr := st.WithDetails(br); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrOutOfRange):
		return status.Error(codes.OutOfRange, err.Error())
	case errors.Is(err, ErrUnavailable):
		logger.Warn("request failed: unavailable", "method", method, "err", err)
		st := status.New(codes.Unavailable, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(UnavailableRetry)}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	}
	logger.Error("request failed", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// UnaryServerInterceptor maps every handler error through Status. pkg/server
// installs it innermost, so a service's handlers return plain errors.
func UnaryServerInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, Status(logger, info.FullMethod, err)
		}
		return resp, nil
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls.
func StreamServerInterceptor(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return Status(logger, info.FullMethod, handler(srv, ss))
	}
}
