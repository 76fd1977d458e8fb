// Package web holds the HTTP plumbing shared by the gateway's REST facade and
// its Segment-compatible tracking API: the JSON error shape, request and trace
// ids, CORS, body limits, per-key rate limits and request metrics.
package web

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is the JSON body of every error the gateway returns.
type Error struct {
	// Code is the gRPC code name, e.g. "INVALID_ARGUMENT".
	Code string `json:"code"`
	// HTTPStatus repeats the response status for clients that only see bodies.
	HTTPStatus int `json:"http_status"`
	// Message names the bad field when there is one.
	Message string `json:"message"`
	// RequestID matches the X-Request-Id response header.
	RequestID string `json:"request_id"`
	// Details carries only client-actionable details (field violations, retry delay).
	Details []Detail `json:"details,omitempty"`
}

// Detail is one client-actionable error detail.
type Detail struct {
	// Type is "field_violation" or "retry".
	Type string `json:"type"`
	// Field is the offending field path for field violations.
	Field string `json:"field,omitempty"`
	// Description says what is wrong with Field.
	Description string `json:"description,omitempty"`
	// RetryAfterSeconds is how long to wait before retrying.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}

// codeNames spells gRPC codes the way google.rpc.Code does, which is what REST
// clients of Google-style APIs expect in "code".
var codeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// CodeName returns the google.rpc.Code spelling of c.
func CodeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "UNKNOWN"
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

// FromError converts err into the public error body and the delay clients
// should wait before retrying (zero when none applies). It is the gateway's
// one mapping from errors to HTTP answers. Messages of internal failures are
// replaced so that no addresses, paths or stack details leak.
func FromError(requestID string, err error) (Error, time.Duration) {
	if TooLarge(err) {
		var mbe *http.MaxBytesError
		msg := "request body too large"
		if errors.As(err, &mbe) {
			msg = "request body larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"
		}
		return Error{Code: CodeName(codes.InvalidArgument), HTTPStatus: http.StatusRequestEntityTooLarge, Message: msg, RequestID: requestID}, 0
	}
	st, _ := status.FromError(err)
	body := Error{Code: CodeName(st.Code()), HTTPStatus: HTTPStatus(st.Code()), Message: st.Message(), RequestID: requestID}
	var retry time.Duration
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		body.Message = "internal error; quote request_id " + requestID + " when reporting it"
		return body, 0
	case codes.Unavailable:
		body.Message = "service temporarily unavailable; retry later"
	case codes.Canceled:
		body.Message = "request canceled"
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				body.Details = append(body.Details, Detail{Type: "field_violation", Field: v.GetField(), Description: v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
			body.Details = append(body.Details, Detail{Type: "retry", RetryAfterSeconds: RetryAfterSeconds(retry)})
		}
	}
	if st.Code() == codes.ResourceExhausted && retry <= 0 {
		retry = time.Second
	}
	return body, retry
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
// Retry-After when the caller should back off, and returns the body written.
func WriteError(w http.ResponseWriter, r *http.Request, err error) Error {
	body, retry := FromError(RequestID(r.Context()), err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds(retry)))
	}
	WriteJSON(w, body.HTTPStatus, body)
	return body
}

// WriteStatus writes a gateway-originated error with code c and message msg.
func WriteStatus(w http.ResponseWriter, r *http.Request, c codes.Code, msg string) {
	WriteError(w, r, status.Error(c, msg))
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL","http_status":500,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
