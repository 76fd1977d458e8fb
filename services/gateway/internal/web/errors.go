// Package web holds the HTTP plumbing shared by the gateway's REST facade and
// its Segment-compatible tracking API: the JSON error shape, request and trace
// ids, CORS, body limits, per-key rate limits and request metrics.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Error is one error answer: its HTTP status and its body, a
// google.rpc.Status as grpc-gateway writes it (docs/api.md#errors):
//
//	{"code": 3, "message": "band: unknown value \"x\"; ...", "details": [
//	  {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "band", "description": "..."}]},
//	  {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "..."}]}
type Error struct {
	// HTTPStatus is the response status.
	HTTPStatus int
	// Status is the body; its code is the gRPC code as an integer.
	Status *spb.Status
	// RetryAfter is how long the client should wait before retrying;
	// zero when no wait applies.
	RetryAfter time.Duration
}

// Code is the gRPC code of e.
func (e Error) Code() codes.Code { return codes.Code(e.Status.GetCode()) }

// Message is the message of e.
func (e Error) Message() string { return e.Status.GetMessage() }

// Detail returns the first detail of e that is a T, if any.
func Detail[T proto.Message](e Error) (T, bool) {
	var zero T
	for _, a := range e.Status.GetDetails() {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		if t, ok := m.(T); ok {
			return t, true
		}
	}
	return zero, false
}

// HTTPStatus maps a gRPC code to the HTTP status used by grpc-gateway.
func HTTPStatus(c codes.Code) int { return runtime.HTTPStatusFromCode(c) }

// ErrTooLarge is what readers wrapped by LimitBody return once the limit is
// passed; the gateway answers it with 413.
var ErrTooLarge = errors.New("request body too large")

// TooLarge reports whether err says a request body passed its limit
// (LimitBody's *http.MaxBytesError, or ErrTooLarge), which FromError
// answers with 413.
func TooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe) || errors.Is(err, ErrTooLarge)
}

// FromError converts err into the public error answer. It is the gateway's
// one mapping from errors to HTTP answers. Messages of internal failures
// are replaced so that no addresses, paths or error chains leak; only the
// details a client can act on are kept (field violations, retry delays,
// precondition failures, resource and quota information), and a
// google.rpc.RequestInfo with the request id is always added.
func FromError(requestID string, err error) Error {
	httpStatus := 0
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		httpStatus, err = hse.HTTPStatus, hse.Err
	}
	if TooLarge(err) {
		var mbe *http.MaxBytesError
		msg := "request body too large"
		if errors.As(err, &mbe) {
			msg = "request body larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"
		}
		st := &spb.Status{Code: int32(codes.InvalidArgument), Message: msg}
		addDetail(st, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "body", Description: msg}}})
		addDetail(st, &errdetails.RequestInfo{RequestId: requestID})
		return Error{HTTPStatus: http.StatusRequestEntityTooLarge, Status: st}
	}
	in, _ := status.FromError(err)
	code := in.Code()
	if httpStatus == 0 {
		httpStatus = HTTPStatus(code)
	}
	st := &spb.Status{Code: int32(code), Message: in.Message()}
	out := Error{HTTPStatus: httpStatus, Status: st}
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		st.Message = "internal error; quote request id " + requestID + " when reporting it"
		addDetail(st, &errdetails.RequestInfo{RequestId: requestID})
		return out
	case codes.Unavailable:
		st.Message = "service temporarily unavailable; retry later"
	case codes.Canceled:
		st.Message = "request canceled"
	}
	violations := false
	for _, d := range in.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			violations = violations || len(d.GetFieldViolations()) > 0
			addDetail(st, d)
		case *errdetails.RetryInfo:
			out.RetryAfter = d.GetRetryDelay().AsDuration()
		case *errdetails.PreconditionFailure, *errdetails.QuotaFailure, *errdetails.ResourceInfo,
			*errdetails.ErrorInfo, *errdetails.Help, *errdetails.LocalizedMessage:
			addDetail(st, d.(proto.Message))
		}
	}
	if code == codes.InvalidArgument && !violations {
		// grpc-gateway turns a query parameter it cannot parse into a bare
		// message (see QueryParser); give it back its field violation.
		if field, desc, ok := paramViolation(st.Message); ok {
			addDetail(st, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
		}
	}
	if code == codes.ResourceExhausted && out.RetryAfter <= 0 {
		out.RetryAfter = time.Second
	}
	if out.RetryAfter > 0 {
		addDetail(st, &errdetails.RetryInfo{RetryDelay: durationpb.New(out.RetryAfter)})
	}
	addDetail(st, &errdetails.RequestInfo{RequestId: requestID})
	return out
}

func addDetail(st *spb.Status, m proto.Message) {
	if a, err := anypb.New(m); err == nil {
		st.Details = append(st.Details, a)
	}
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, as Retry-After needs.
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}

// WriteError writes err as the gateway's JSON error (FromError), with
// Retry-After when the caller should back off, and returns the answer
// written. The error itself, which may hold an internal chain the client
// never sees, is logged with the request id when the answer is a 5xx
// (see WithLogger).
func WriteError(w http.ResponseWriter, r *http.Request, err error) Error {
	id := RequestID(r.Context())
	e := FromError(id, err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds(e.RetryAfter)))
	}
	if e.HTTPStatus >= 500 {
		loggerFrom(r.Context()).WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", id, "code", e.Code().String(), "error", err)
	}
	b, merr := MarshalMessage(e.Status)
	if merr != nil {
		b = []byte(`{"code":13,"message":"internal error"}`)
	}
	writeBody(w, e.HTTPStatus, b)
	return e
}

// WriteStatus writes a gateway-originated error with code c and message msg.
func WriteStatus(w http.ResponseWriter, r *http.Request, c codes.Code, msg string) {
	WriteError(w, r, status.Error(c, msg))
}

// WriteFieldError writes InvalidArgument about one field (a parameter, a
// body field), with its google.rpc.BadRequest violation.
func WriteFieldError(w http.ResponseWriter, r *http.Request, field, description string) {
	WriteError(w, r, FieldError(field, description))
}

// FieldError is InvalidArgument "<field>: <description>" with the matching
// google.rpc.BadRequest field violation.
func FieldError(field, description string) error {
	st := status.New(codes.InvalidArgument, field+": "+description)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: description},
	}}); err == nil {
		st = d
	}
	return st.Err()
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"code":13,"message":"internal error"}`)
	}
	writeBody(w, code, b)
}

func writeBody(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// paramPrefix starts the message of every query parameter error
// (QueryParser), so that FromError can name the parameter in a field
// violation after grpc-gateway has flattened the error into a message.
const paramPrefix = "query parameter "

// paramViolation splits a QueryParser message, "query parameter <name>:
// <description>", into the parameter and the description.
func paramViolation(msg string) (field, desc string, ok bool) {
	rest, ok := strings.CutPrefix(msg, paramPrefix)
	if !ok {
		return "", "", false
	}
	field, desc, ok = strings.Cut(rest, ": ")
	return field, desc, ok && field != "" && !strings.ContainsAny(field, " \"")
}

type loggerKey struct{}

// WithLogger makes WriteError log the errors of 5xx answers, with the
// request id, to logger: the client sees only a generic message.
func WithLogger(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loggerKey{}, logger)))
	})
}

func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// Body is an error body as a client reads it.
type Body struct {
	// Code is the gRPC code.
	Code codes.Code
	// Message is the message.
	Message string
	// RequestID is the google.rpc.RequestInfo detail's request id.
	RequestID string
	// Violations are the google.rpc.BadRequest detail's field violations.
	Violations []*errdetails.BadRequest_FieldViolation
	// RetryDelay is the google.rpc.RetryInfo detail's delay.
	RetryDelay time.Duration
	// Status is the whole body.
	Status *spb.Status
}

// ParseBody reads an error body written by WriteError, refusing anything
// that is not a google.rpc.Status with known details. Tests and tools use
// it to read answers as a client would.
func ParseBody(b []byte) (Body, error) {
	st := &spb.Status{}
	if err := protojson.Unmarshal(b, st); err != nil {
		return Body{}, fmt.Errorf("error body %.200q: %w", b, err)
	}
	out := Body{Code: codes.Code(st.GetCode()), Message: st.GetMessage(), Status: st}
	for _, a := range st.GetDetails() {
		m, err := a.UnmarshalNew()
		if err != nil {
			return Body{}, fmt.Errorf("error body detail %s: %w", a.GetTypeUrl(), err)
		}
		switch d := m.(type) {
		case *errdetails.RequestInfo:
			out.RequestID = d.GetRequestId()
		case *errdetails.BadRequest:
			out.Violations = append(out.Violations, d.GetFieldViolations()...)
		case *errdetails.RetryInfo:
			out.RetryDelay = d.GetRetryDelay().AsDuration()
		}
	}
	return out, nil
}
