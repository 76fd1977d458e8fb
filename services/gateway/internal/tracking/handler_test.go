package tracking

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	fakes *fakes.Suite
	srv   *httptest.Server
	clock *clock.Manual
}

func newEnv(t *testing.T, rate float64, burst int) *env {
	t.Helper()
	f := fakes.Start(t)
	clk := clock.NewManual(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	h := &Handler{Ingestion: ingestionv1.NewIngestionServiceClient(f.Conn), Auth: fakes.Keys{}, Limiter: web.NewRateLimiter(rate, burst, clk)}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(web.Identify(web.LimitBody(4096, mux)))
	t.Cleanup(srv.Close)
	return &env{fakes: f, srv: srv, clock: clk}
}

func (e *env) post(t *testing.T, path string, body []byte, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

func basic(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
}

func TestWriteKeySources(t *testing.T) {
	e := newEnv(t, 0, 0)
	track := func(extra string) []byte {
		return []byte(`{"userId":"u1","event":"report_created","properties":{"n":1}` + extra + `}`)
	}
	tests := []struct {
		name       string
		body       []byte
		auth       string
		wantStatus int
		wantCode   codes.Code
	}{
		{"basic auth", track(""), basic(fakes.WriteKey), 200, codes.OK},
		{"bearer", track(""), "Bearer " + fakes.WriteKey, 200, codes.OK},
		{"body writeKey", track(`,"writeKey":"` + fakes.WriteKey + `"`), "", 200, codes.OK},
		{"header wins over body", track(`,"writeKey":"nope"`), basic(fakes.WriteKey), 200, codes.OK},
		{"unknown basic key", track(""), basic("nope"), 401, codes.Unauthenticated},
		{"unknown body key", track(`,"writeKey":"nope"`), "", 401, codes.Unauthenticated},
		{"no key", track(""), "", 401, codes.Unauthenticated},
		{"garbled basic", track(""), "Basic !!!", 401, codes.Unauthenticated},
		{"read key", track(""), "Bearer " + fakes.ReadKey, 403, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.fakes.Ingestion.Calls.Count()
			code, _, body := e.post(t, "/v1/track", tc.body, tc.auth)
			if code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", code, tc.wantStatus, body)
			}
			if tc.wantStatus != 200 {
				if got, err := web.ParseBody(body); err != nil || got.Code != tc.wantCode || got.RequestID == "" {
					t.Errorf("error body %s, want code %v", body, tc.wantCode)
				}
				if e.fakes.Ingestion.Calls.Count() != before {
					t.Error("a refused request reached ingestion")
				}
				return
			}
			var resp Response
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("response %s: %v", body, err)
			}
			if !resp.Success || resp.Accepted != 1 {
				t.Errorf("response = %+v, want one accepted", resp)
			}
			md, req := e.fakes.Ingestion.Calls.Last()
			if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+fakes.WriteKey {
				t.Errorf("forwarded authorization = %q", got)
			}
			ev := req.(*ingestionv1.IngestRequest).GetEvents()[0]
			if ev.GetType() != ingestionv1.EventType_EVENT_TYPE_TRACK || ev.GetEvent() != "report_created" || ev.GetUserId() != "u1" {
				t.Errorf("forwarded event = %v", ev)
			}
		})
	}
}

func TestCallTypes(t *testing.T) {
	e := newEnv(t, 0, 0)
	tests := []struct {
		path string
		body string
		want ingestionv1.EventType
	}{
		{"/v1/identify", `{"userId":"u1","traits":{"email":"a@b.test"}}`, ingestionv1.EventType_EVENT_TYPE_IDENTIFY},
		{"/v1/group", `{"userId":"u1","groupId":"acme","traits":{"plan":"pro"}}`, ingestionv1.EventType_EVENT_TYPE_GROUP},
		{"/v1/page", `{"anonymousId":"a1","name":"Pricing"}`, ingestionv1.EventType_EVENT_TYPE_PAGE},
		{"/v1/screen", `{"userId":"u1","name":"Home"}`, ingestionv1.EventType_EVENT_TYPE_SCREEN},
		{"/v1/alias", `{"userId":"u1","previousId":"a1"}`, ingestionv1.EventType_EVENT_TYPE_ALIAS},
		{"/v1/t", `{"userId":"u1","event":"report_created"}`, ingestionv1.EventType_EVENT_TYPE_TRACK},
		{"/v1/i", `{"userId":"u1"}`, ingestionv1.EventType_EVENT_TYPE_IDENTIFY},
		{"/v1/g", `{"userId":"u1","groupId":"acme"}`, ingestionv1.EventType_EVENT_TYPE_GROUP},
		{"/v1/p", `{"anonymousId":"a1","name":"Home"}`, ingestionv1.EventType_EVENT_TYPE_PAGE},
		{"/v1/s", `{"userId":"u1","name":"Home"}`, ingestionv1.EventType_EVENT_TYPE_SCREEN},
		{"/v1/a", `{"userId":"u1","previousId":"a1"}`, ingestionv1.EventType_EVENT_TYPE_ALIAS},
		{"/v1/b", `{"batch":[{"type":"page","anonymousId":"a1","name":"Home"}]}`, ingestionv1.EventType_EVENT_TYPE_PAGE},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, _, body := e.post(t, tc.path, []byte(tc.body), basic(fakes.WriteKey))
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			_, req := e.fakes.Ingestion.Calls.Last()
			if got := req.(*ingestionv1.IngestRequest).GetEvents()[0].GetType(); got != tc.want {
				t.Errorf("type = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBatchPartialAcceptance(t *testing.T) {
	e := newEnv(t, 0, 0)
	body, err := os.ReadFile(filepath.Join("testdata", "batch_mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/batch", "/v1/import"} {
		t.Run(path, func(t *testing.T) {
			code, _, raw := e.post(t, path, body, "")
			if code != 200 {
				t.Fatalf("status = %d, body %s", code, raw)
			}
			var got Response
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("decode %s: %v", raw, err)
			}
			want := Response{Success: false, Accepted: 2, Duplicates: 1, Rejected: []Rejection{
				{Index: 1, Field: "type", Reason: got.reason(1)},
				{Index: 2, MessageID: "m2", Field: "event", Reason: "reserved event name"},
				{Index: 4, Field: "timestamp", Reason: got.reason(4)},
				{Index: 5, Reason: got.reason(5)},
			}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("response =\n%+v\nwant\n%+v", got, want)
			}
			for _, r := range got.Rejected {
				if r.Reason == "" {
					t.Errorf("rejection %d has no reason", r.Index)
				}
			}
			_, req := e.fakes.Ingestion.Calls.Last()
			evs := req.(*ingestionv1.IngestRequest).GetEvents()
			if len(evs) != 4 {
				t.Fatalf("forwarded %d events, want 4", len(evs))
			}
			ctx := evs[0].GetContext().AsMap()
			if ctx["groupId"] != "acme" || ctx["ip"] != "10.0.0.1" {
				t.Errorf("context not merged: %v", ctx)
			}
			if evs[1].GetSentAt().AsTime() != time.Date(2026, 5, 1, 12, 0, 5, 0, time.UTC) {
				t.Errorf("batch sentAt not applied: %v", evs[1].GetSentAt())
			}
			if evs[2].GetUserId() != "42" {
				t.Errorf("numeric userId = %q, want \"42\"", evs[2].GetUserId())
			}
		})
	}
}

// reason returns the reason reported for index i, so that expectations pin
// indexes and fields while the wording stays the decoder's.
func (r Response) reason(i int) string {
	for _, x := range r.Rejected {
		if x.Index == i {
			return x.Reason
		}
	}
	return ""
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, 1, 1)
	tests := []struct {
		name       string
		path       string
		body       []byte
		auth       string
		wantStatus int
		retryAfter string
	}{
		{"unparseable batch", "/v1/batch", []byte(`{"batch": [`), basic(fakes.WriteKey), 400, ""},
		{"batch not an array", "/v1/batch", []byte(`{"batch": {}}`), basic(fakes.WriteKey), 400, ""},
		{"call not an object", "/v1/track", []byte(`[1,2]`), basic(fakes.BusyKey), 400, ""},
		{"oversized", "/v1/batch", bytes.Repeat([]byte(" "), 5000), basic(fakes.WriteKey), 413, ""},
		{"ingestion busy", "/v1/track", []byte(`{"userId":"u","event":"x"}`), basic(fakes.BusyKey), 429, "3"},
		{"rate limited", "/v1/track", []byte(`{"userId":"u","event":"x"}`), basic(fakes.BusyKey), 429, "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := e.post(t, tc.path, tc.body, tc.auth)
			if code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", code, tc.wantStatus, body)
			}
			got, err := web.ParseBody(body)
			if err != nil || got.Message == "" || got.RequestID == "" {
				t.Errorf("error body %s", body)
			}
			if tc.wantStatus == 400 && len(got.Violations) != 1 {
				t.Errorf("error body %s: want one field violation", body)
			}
			if tc.retryAfter != "" && got.RetryDelay <= 0 {
				t.Errorf("error body %s: want a RetryInfo", body)
			}
			if ra := hdr.Get("Retry-After"); ra != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", ra, tc.retryAfter)
			}
		})
	}
	e.clock.Advance(time.Second)
	if code, _, body := e.post(t, "/v1/track", []byte(`{"userId":"u","event":"x"}`), basic(fakes.WriteKey)); code != 200 {
		t.Errorf("after refill: %d %s", code, body)
	}
}

func TestEmptyBatchSkipsIngestion(t *testing.T) {
	e := newEnv(t, 0, 0)
	code, _, body := e.post(t, "/v1/batch", []byte(`{"batch": []}`), basic(fakes.WriteKey))
	if code != 200 || !bytes.Contains(body, []byte(`"success":true`)) {
		t.Fatalf("status %d body %s", code, body)
	}
	if n := e.fakes.Ingestion.Calls.Count(); n != 0 {
		t.Errorf("ingestion called %d times for an empty batch", n)
	}
}

func TestGzipBodies(t *testing.T) {
	e := newEnv(t, 0, 0)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	batch := []byte(`{"batch":[{"type":"track","userId":"u1","event":"report_created"}]}`)
	// 5 MB of spaces compresses far below the 4 KiB body limit but inflates past 4 MiB.
	bomb := append(append([]byte(`{"batch":[`), bytes.Repeat([]byte(" "), 5<<20)...), []byte(`]}`)...)
	tests := []struct {
		name       string
		encoding   string
		body       []byte
		wantStatus int
	}{
		{"gzip batch", "gzip", gz(batch), 200},
		{"not gzip", "gzip", batch, 400},
		{"inflates too far", "gzip", gz(bomb), 413},
		{"unknown encoding", "br", batch, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/v1/batch", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", basic(fakes.WriteKey))
			req.Header.Set("Content-Encoding", tc.encoding)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantStatus, b)
			}
			if tc.wantStatus == 200 && !bytes.Contains(b, []byte(`"accepted":1`)) {
				t.Errorf("body %s, want one accepted", b)
			}
		})
	}
}
