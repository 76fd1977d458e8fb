package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// admissionEnv is a gateway over the fakes with the given admission.
func admissionEnv(t *testing.T, adm *Admission) (*httptest.Server, *fakes.Suite) {
	t.Helper()
	f := fakes.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := New(ctx, Config{
		Upstreams:  Upstreams{Ingestion: f.Conn, Stages: f.Conn, Health: f.Conn, Routing: f.Conn},
		Auth:       fakes.Keys{},
		Admission:  adm,
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, f
}

// unsized hides a body's length, so that the client sends it chunked.
type unsized struct{ r io.Reader }

func (u unsized) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestAdmissionSheds(t *testing.T) {
	batch := []byte(`{"batch":[{"type":"track","userId":"u1","event":"report_created"}]}`)
	inBody := []byte(`{"writeKey":"` + fakes.WriteKey + `","batch":[{"type":"track","userId":"u1","event":"report_created"}]}`)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(fakes.WriteKey+":"))
	tests := []struct {
		name string
		// held is what other requests hold: key id -> bytes, on writes
		// (reads when read is set).
		held       map[string]int64
		read       bool
		method     string
		path       string
		auth       string
		body       io.Reader
		wantStatus int
		wantCalls  int // ingestion calls
	}{
		{name: "tracking within the bounds", method: "POST", path: "/v1/batch", auth: basic, body: bytes.NewReader(batch),
			wantStatus: 200, wantCalls: 1},
		{name: "tracking over the key's bytes, refused unread", held: map[string]int64{"id-" + fakes.WriteKey: 950}, method: "POST", path: "/v1/batch",
			auth: basic, body: bytes.NewReader(batch), wantStatus: 429},
		{name: "another key still gets in", held: map[string]int64{"id-" + fakes.BusyKey: 950}, method: "POST", path: "/v1/batch",
			auth: basic, body: bytes.NewReader(batch), wantStatus: 200, wantCalls: 1},
		{name: "a key in the body counts overall only", held: map[string]int64{"id-" + fakes.WriteKey: 1000}, method: "POST", path: "/v1/batch",
			body: bytes.NewReader(inBody), wantStatus: 200, wantCalls: 1},
		{name: "over the overall bytes", held: map[string]int64{"a": 1000, "b": 1000}, method: "POST", path: "/v1/batch",
			body: bytes.NewReader(inBody), wantStatus: 429},
		{name: "a chunked body is counted as it is read", held: map[string]int64{"a": 1000, "b": 990}, method: "POST", path: "/v1/batch",
			auth: basic, body: unsized{bytes.NewReader(batch)}, wantStatus: 429},
		{name: "a small chunked body fits", method: "POST", path: "/v1/batch",
			auth: basic, body: unsized{bytes.NewReader(batch)}, wantStatus: 200, wantCalls: 1},
		{name: "REST read within the bounds", method: "GET", path: "/v1/accounts/acme/health", auth: "Bearer " + fakes.ReadKey, wantStatus: 200},
		{name: "REST read over the key's readers", read: true, held: map[string]int64{"id-" + fakes.ReadKey: 0}, method: "GET",
			path: "/v1/accounts/acme/health", auth: "Bearer " + fakes.ReadKey, wantStatus: 429},
		{name: "REST reads of other keys go on", read: true, held: map[string]int64{"id-" + fakes.ReadKey: 0}, method: "GET",
			path: "/v1/accounts/acme/health", auth: "Bearer " + fakes.WriteKey, wantStatus: 200},
		{name: "reads do not take writes' room", held: map[string]int64{"a": 1000, "b": 1000}, method: "GET",
			path: "/v1/accounts/acme/health", auth: "Bearer " + fakes.ReadKey, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewManual(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			adm := &Admission{
				Writes: admit.New("gateway writes", admit.Limits{Requests: 10, KeyRequests: 5, Bytes: 2000, KeyBytes: 1000}, clk),
				Reads:  admit.New("gateway reads", admit.Limits{Requests: 3, KeyRequests: 1}, clk),
			}
			srv, f := admissionEnv(t, adm)
			for key, n := range tt.held {
				c := adm.Writes
				if tt.read {
					c = adm.Reads
				}
				tk, err := c.TryAcquire(key, n)
				if err != nil {
					t.Fatal(err)
				}
				defer tk.Release()
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusTooManyRequests {
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
				}
				if e := decodeBody(t, body); e.Code != codes.ResourceExhausted || e.RetryDelay <= 0 {
					t.Errorf("error body %+v, want RESOURCE_EXHAUSTED with a retry detail", e)
				}
			}
			if n := f.Ingestion.Calls.Count(); n != tt.wantCalls {
				t.Errorf("ingestion called %d times, want %d", n, tt.wantCalls)
			}
			// The test's own request is released once answered (the
			// handler returns just after the client has the answer).
			for _, c := range adm.Controllers() {
				want := int64(len(tt.held)) * boolInt(c == adm.Writes != tt.read)
				for i := 0; c.Stats().Requests != want; i++ {
					if i > 10_000_000 {
						t.Fatalf("%s holds %d requests after the answer, want only the %d held", c.Name(), c.Stats().Requests, want)
					}
					runtime.Gosched()
				}
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func decodeBody(t *testing.T, b []byte) web.Body {
	t.Helper()
	return decodeError(t, response{body: b})
}

// TestAdmissionWaits: a request over a bound waits, and is admitted when
// room frees within the wait, or refused when the wait is over.
func TestAdmissionWaits(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	adm := &Admission{Reads: admit.New("gateway reads", admit.Limits{Requests: 1, Wait: 100 * time.Millisecond}, clk)}
	srv, _ := admissionEnv(t, adm)
	get := func() <-chan int {
		code := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("GET", srv.URL+"/v1/accounts/acme/health", nil)
			req.Header.Set("Authorization", "Bearer "+fakes.ReadKey)
			resp, err := srv.Client().Do(req)
			if err != nil {
				code <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code <- resp.StatusCode
		}()
		return code
	}
	// waiting waits for the n-th wait on the clock (a manual clock keeps
	// the waits that ended early).
	waiting := func(n int) {
		for i := 0; clk.Waiters() < n; i++ {
			if i > 10_000_000 {
				t.Fatal("the request never waited")
			}
			runtime.Gosched()
		}
	}
	held, err := adm.Reads.TryAcquire("other", 0)
	if err != nil {
		t.Fatal(err)
	}
	code := get()
	waiting(1)
	held.Release()
	if c := <-code; c != 200 {
		t.Errorf("status %d after room freed within the wait, want 200", c)
	}
	held, err = adm.Reads.TryAcquire("other", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	code = get()
	waiting(2)
	clk.Advance(100 * time.Millisecond)
	if c := <-code; c != http.StatusTooManyRequests {
		t.Errorf("status %d after the wait, want 429", c)
	}
}
