package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
	"github.com/cairn-dev/cairn/services/gateway/internal/tracking"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// TestHostileInput: every hostile request gets a 4xx that names where the
// problem is, never a 500.
func TestHostileInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	tests := []struct {
		name   string
		method string
		path   string
		key    string
		body   string
		header map[string]string
		code   int
		msg    string // the error message, or a substring of a tracking rejection
	}{
		{name: "path parameter", method: "GET", path: "/v1/accounts/%ff%fe/journey", key: fakes.ReadKey,
			code: 400, msg: "path parameter account_id: not valid UTF-8"},
		{name: "path parameter of a PUT", method: "PUT", path: "/v1/owners/%ff", key: fakes.ReadKey, body: `{"name":"x"}`,
			code: 400, msg: "path parameter owner.owner_id: not valid UTF-8"},
		{name: "query parameter", method: "GET", path: "/v1/funnel?cohort=%C3%28", key: fakes.ReadKey,
			code: 400, msg: "query parameter cohort: not valid UTF-8"},
		{name: "header", method: "GET", path: "/v1/accounts/acme/journey", key: fakes.ReadKey,
			header: map[string]string{"Grpc-Metadata-Note": "\xff"}, code: 400, msg: "header Grpc-Metadata-Note: not valid UTF-8"},
		{name: "REST body, invalid UTF-8", method: "POST", path: "/v1/events:batch", key: fakes.WriteKey,
			body: "{\"events\":[{\"userId\":\"u\",\"event\":\"e\xff\"}]}", code: 400, msg: "events[0].event: invalid UTF-8 in string"},
		{name: "REST body, number out of range", method: "POST", path: "/v1/events:batch", key: fakes.WriteKey,
			body: `{"events":[{"userId":"u","properties":{"seats":1e400}}]}`, code: 400,
			msg: "events[0].properties.seats: number 1e400 is out of range (more than a 64-bit float holds)"},
		{name: "REST body, nested too deep", method: "POST", path: "/v1/events:batch", key: fakes.WriteKey,
			body: `{"events":[{"userId":"u","properties":{"x":` + deep + `}}]}`, code: 400,
			msg: "events[0].properties: nested more than 10000 levels deep"},
		{name: "track, invalid UTF-8", method: "POST", path: "/v1/track", key: fakes.WriteKey,
			body: "{\"userId\":\"u\",\"event\":\"e\",\"properties\":{\"plan\":\"\xff\"}}", code: 400,
			msg: "unparseable body: properties.plan: not valid UTF-8"},
		{name: "track, nested 10,000 deep", method: "POST", path: "/v1/track", key: fakes.WriteKey,
			body: `{"userId":"u","event":"e","properties":` + deep + `}`, code: 400,
			msg: "unparseable body: properties: nested more than 10000 levels deep"},
		{name: "batch, nested 10,000 deep", method: "POST", path: "/v1/batch", key: fakes.WriteKey,
			body: `{"batch":[{"type":"track","userId":"u","event":"e","context":` + deep + `}]}`, code: 400,
			msg: "unparseable body: batch[0].context: nested more than 10000 levels deep"},
		{name: "track, number out of range", method: "POST", path: "/v1/track", key: fakes.WriteKey,
			body: `{"userId":"u","event":"e","properties":{"seats":1e400}}`, code: 200,
			msg: `"field":"properties.seats","reason":"number 1e400 is out of range (more than a 64-bit float holds)"`},
		{name: "batch item, number out of range", method: "POST", path: "/v1/batch", key: fakes.WriteKey,
			body: `{"batch":[{"type":"track","userId":"u","event":"e"},{"type":"track","userId":"u","event":"e","properties":{"n":-1e999}}]}`,
			code: 200, msg: `"index":1,"field":"properties.n","reason":"number -1e999 is out of range (more than a 64-bit float holds)"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.key, []byte(tc.body), tc.header)
			if r.code != tc.code {
				t.Fatalf("status = %d, want %d; body %.300s", r.code, tc.code, r.body)
			}
			if tc.code == http.StatusOK {
				if !bytes.Contains(r.body, []byte(tc.msg)) {
					t.Fatalf("body %s lacks %s", r.body, tc.msg)
				}
				return
			}
			if got := decodeError(t, r); got.Code != codes.InvalidArgument || got.Message != tc.msg {
				t.Fatalf("error = %s %q, want INVALID_ARGUMENT %q", got.Code, got.Message, tc.msg)
			}
		})
	}
}

// TestUpstreamUTF8Net checks the net under the parameter checks: a request
// that reaches an upstream call with invalid UTF-8 comes back as
// InvalidArgument naming the field, not as grpc-go's Internal.
func TestUpstreamUTF8Net(t *testing.T) {
	f := fakes.Start(t)
	u := Upstreams{Ingestion: f.Conn, Stages: f.Conn, Health: f.Conn, Routing: f.Conn}.utf8Checked()
	_, err := stagesv1.NewStagesServiceClient(u.Stages).GetAccountJourney(t.Context(), &stagesv1.GetAccountJourneyRequest{AccountId: "ac\xffme"})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != "account_id: not valid UTF-8" {
		t.Fatalf("error = %v, want InvalidArgument naming account_id", err)
	}
	if _, err := stagesv1.NewStagesServiceClient(u.Stages).GetAccountJourney(t.Context(), &stagesv1.GetAccountJourneyRequest{AccountId: "boom"}); status.Code(err) != codes.Internal {
		t.Fatalf("an upstream Internal = %v, want it kept", err)
	}
}

// gatewayForFuzz is one gateway over the fakes, shared by the fuzz inputs.
func gatewayForFuzz(f *testing.F) http.Handler {
	fk := fakes.Start(f)
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	h, err := New(ctx, Config{
		Upstreams: Upstreams{Ingestion: fk.Conn, Stages: fk.Conn, Health: fk.Conn, Routing: fk.Conn},
		Auth:      fakes.Keys{},
	})
	if err != nil {
		f.Fatal(err)
	}
	return h
}

// FuzzGateway sends arbitrary requests (method, target, one header, body)
// to every route of the gateway, REST facade and tracking API alike, over
// fake upstreams. Garbage is never a server error: the answer is below 500,
// except the fakes' 501 for the RPCs they do not implement; every error
// body is the gateway's JSON error with a message; and a tracking answer of
// 200 names the field and reason of every rejection.
func FuzzGateway(f *testing.F) {
	for _, s := range []struct{ method, target, header, body string }{
		{"GET", "/v1/accounts/acme/journey", "", ""},
		{"GET", "/v1/accounts/%ff%fe/journey", "", ""},
		{"GET", "/v1/funnel?cohort=2026-03&x=%ff", "", ""},
		{"GET", "/v1/assignments?state=ASSIGNMENT_STATE_OPEN", "X-Request-Id: \xff", ""},
		{"PUT", "/v1/owners/%ff", "", `{"name":"x"}`},
		{"POST", "/v1/events:batch", "", `{"events":[{"userId":"u","event":"e","properties":{"a":1e400}}]}`},
		{"POST", "/v1/track", "", `{"userId":"u","event":"e","properties":{"a":1e400}}`},
		{"POST", "/v1/track", "", "{\"userId\":\"u\",\"event\":\"e\xff\"}"},
		{"POST", "/v1/batch", "Content-Encoding: gzip", `{"batch":[]}`},
		{"POST", "/v1/batch", "", `{"batch":[{"type":"track","userId":"u","event":"e"},{"type":"bogus"},1]}`},
		{"POST", "/v1/b", "", `{"writeKey":"tok-write","batch":[{"type":"identify","userId":"u","traits":{"a":[[[]]]}}]}`},
		{"POST", "/v1/identify", "", `{"userId":"u","traits":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`},
		{"OPTIONS", "/v1/track", "Origin: https://example.com", ""},
	} {
		f.Add(s.method, s.target, s.header, []byte(s.body), uint8(0))
	}
	h := gatewayForFuzz(f)
	keys := []string{fakes.WriteKey, fakes.ReadKey, "", "nope"}
	f.Fuzz(func(t *testing.T, method, target, header string, body []byte, key uint8) {
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: cairn\r\nContent-Length: %d\r\n", method, target, len(body))
		if k := keys[int(key)%len(keys)]; k != "" {
			fmt.Fprintf(&raw, "Authorization: Bearer %s\r\n", k)
		}
		if header != "" {
			fmt.Fprintf(&raw, "%s\r\n", header)
		}
		raw.WriteString("\r\n")
		raw.Write(body)
		req, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // net/http refuses it before any handler runs
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusNotImplemented {
			t.Fatalf("%s %q (%q): status %d, body %s", method, target, header, w.Code, w.Body)
		}
		if w.Code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			if e, err := web.ParseBody(w.Body.Bytes()); err != nil || e.Message == "" || e.RequestID == "" {
				t.Fatalf("error body %q is not the gateway's error", w.Body)
			}
		}
		if w.Code == http.StatusOK && strings.HasPrefix(req.URL.Path, "/v1/") && !strings.ContainsAny(req.URL.Path[4:], "/:") {
			var resp tracking.Response
			if json.Unmarshal(w.Body.Bytes(), &resp) == nil {
				for _, rj := range resp.Rejected {
					if rj.Reason == "" {
						t.Fatalf("rejection without a reason: %s", w.Body)
					}
				}
			}
		}
	})
}
