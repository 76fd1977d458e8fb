package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

func TestRequireUTF8(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		header [2]string
		code   int
		msg    string
	}{
		{name: "clean", query: "a=1&b=%C3%A9", header: [2]string{"X-Note", "héllo"}, code: http.StatusOK},
		{name: "query value", query: "journey_id=%ff", code: http.StatusBadRequest, msg: "query parameter journey_id: not valid UTF-8"},
		{name: "query name", query: "%fe=1", code: http.StatusBadRequest, msg: `query parameter "\xfe": not valid UTF-8`},
		{name: "header value", header: [2]string{"Grpc-Metadata-Note", "a\xffb"}, code: http.StatusBadRequest, msg: "header Grpc-Metadata-Note: not valid UTF-8"},
		{name: "malformed escape left to the handler", query: "a=%zz", code: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := Identify(RequireUTF8(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })))
			r := httptest.NewRequest("GET", "/v1/funnel", nil)
			r.URL.RawQuery = tc.query
			if tc.header[0] != "" {
				r.Header.Set(tc.header[0], tc.header[1])
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Fatalf("code = %d (%s), want %d", w.Code, w.Body, tc.code)
			}
			if tc.msg == "" {
				return
			}
			e, err := ParseBody(w.Body.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if e.Code != codes.InvalidArgument || e.Message != tc.msg {
				t.Errorf("error = %s %q, want INVALID_ARGUMENT %q", e.Code, e.Message, tc.msg)
			}
		})
	}
}

func TestCheckPathParams(t *testing.T) {
	if err := CheckPathParams(map[string]string{"account_id": "acme", "journey_id": "é"}); err != nil {
		t.Fatalf("valid params: %v", err)
	}
	err := CheckPathParams(map[string]string{"account_id": "\xff\xfe", "z": "\xff"})
	body := FromError("id", err)
	br, _ := Detail[*errdetails.BadRequest](body)
	if body.HTTPStatus != http.StatusBadRequest || body.Message() != "path parameter account_id: not valid UTF-8" ||
		len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != "account_id" {
		t.Fatalf("error = %+v", body)
	}
}

func jsonPb() runtime.Marshaler {
	return FieldNamingJSON{Marshaler: &runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true}}}
}

func TestFieldNamingJSON(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001)
	tests := []struct {
		name string
		body string
		want string // the error, "" for none
	}{
		{"valid", `{"events":[{"userId":"u","properties":{"plan":"pro"}}]}`, ""},
		{"empty body", ``, "EOF"},
		{"invalid UTF-8 in a property", "{\"events\":[{\"userId\":\"u\",\"properties\":{\"plan\":\"pro\xff\"}}]}", "events[0].properties.plan: invalid UTF-8 in string"},
		{"invalid UTF-8 in a field", "{\"events\":[{},{\"user_id\":\"u\xfe\"}]}", "events[1].user_id: invalid UTF-8 in string"},
		{"invalid UTF-8 in a key", "{\"events\":[{\"properties\":{\"pl\xffan\":1}}]}", "events[0].properties: invalid UTF-8 in string"},
		{"number out of range", `{"events":[{"properties":{"seats":1e400}}]}`, "events[0].properties.seats: number 1e400 is out of range (more than a 64-bit float holds)"},
		{"leading whitespace", "\n\n  {\"events\":[{\"properties\":{\"a\":\n-1e999}}]}", "events[0].properties.a: number -1e999 is out of range (more than a 64-bit float holds)"},
		{"wrong type", `{"events":[{"userId":5}]}`, "events[0].userId: invalid value for string field userId: 5"},
		{"nested 10,001 deep", `{"events":[{"properties":` + deep + `}]}`, "events[0].properties: nested more than 10000 levels deep"},
		{"truncated", `{"events":`, "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req ingestionv1.IngestRequest
			err := jsonPb().NewDecoder(strings.NewReader(tc.body)).Decode(&req)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Decode = %v", err)
			case tc.want == "EOF" && !errors.Is(err, io.EOF):
				t.Fatalf("Decode = %v, want io.EOF (an empty body is an empty request)", err)
			case tc.want != "" && tc.want != "EOF" && (err == nil || err.Error() != tc.want):
				t.Fatalf("Decode = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzBodyError: whatever the body, an error that protojson placed by line
// and column is rewritten to name the field instead.
func FuzzBodyError(f *testing.F) {
	f.Add([]byte("{\"events\":[{\"properties\":{\"plan\":\"pro\xff\"}}]}"))
	f.Add([]byte(`{"events":[{"properties":{"seats":1e400}}]}`))
	f.Add([]byte("\n{\"events\":\n[{\"traits\":{\"a\":[[[[1]]]]}}]}"))
	f.Add([]byte(`{"events":[{"timestamp":"x"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req ingestionv1.IngestRequest
		err := jsonPb().NewDecoder(strings.NewReader(string(body))).Decode(&req)
		if err == nil || errors.Is(err, io.EOF) {
			return
		}
		if msg := err.Error(); msg == "" || strings.Contains(msg, "(line ") {
			t.Fatalf("error %q does not name the field", msg)
		}
	})
}
