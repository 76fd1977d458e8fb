package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RequireUTF8 refuses, with 400 naming where, a request whose header values
// or query parameters (names or values, once percent-decoded) are not valid
// UTF-8. Cairn forwards headers and query parameters as gRPC metadata and
// protobuf strings, which must be UTF-8: refused here, such a request cannot
// reach protobuf marshalling and come back as a 500.
func RequireUTF8(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkHeaders(r.Header); err != nil {
			WriteError(w, r, err)
			return
		}
		if err := checkQuery(r.URL.RawQuery); err != nil {
			WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkHeaders(h http.Header) error {
	// The common case, every value valid, is checked without sorting: this
	// runs on every tracking request.
	valid := true
	for _, vs := range h {
		for _, v := range vs {
			valid = valid && utf8.ValidString(v)
		}
	}
	if valid {
		return nil
	}
	for _, name := range sortedKeys(h) {
		for _, v := range h[name] {
			if !utf8.ValidString(v) {
				return status.Errorf(codes.InvalidArgument, "header %s: not valid UTF-8", printable(name))
			}
		}
	}
	return nil
}

func checkQuery(raw string) error {
	if raw == "" {
		return nil
	}
	q, _ := url.ParseQuery(raw) // malformed pairs are the handlers' business
	for _, name := range sortedKeys(q) {
		if !utf8.ValidString(name) {
			return invalidParam("query parameter", name)
		}
		for _, v := range q[name] {
			if !utf8.ValidString(v) {
				return invalidParam("query parameter", name)
			}
		}
	}
	return nil
}

// CheckPathParams refuses path parameters (as the REST router decoded them)
// that are not valid UTF-8, naming the first such parameter.
func CheckPathParams(params map[string]string) error {
	for _, name := range sortedKeys(params) {
		if !utf8.ValidString(params[name]) {
			return invalidParam("path parameter", name)
		}
	}
	return nil
}

// invalidParam is InvalidArgument about parameter name, with a field
// violation: REST parameters are named after the request fields they fill.
func invalidParam(kind, name string) error {
	field := printable(name)
	st := status.New(codes.InvalidArgument, kind+" "+field+": not valid UTF-8")
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: "not valid UTF-8"},
	}}); err == nil {
		st = d
	}
	return st.Err()
}

// printable returns name as it can be shown in a message: itself when it is
// valid UTF-8 without control characters, else Go-quoted.
func printable(name string) string {
	if utf8.ValidString(name) && !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return name
	}
	return strconv.Quote(name)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
