package deliver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/cairn-dev/cairn/pkg/clock"
)

var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("cairn-plays-test-secret-0123456789"))

// harness runs an Engine on a Manual clock and keeps every recorded
// outcome.
type harness struct {
	t   *testing.T
	e   *Engine
	clk *clock.Manual

	mu   sync.Mutex
	outs []Outcome
	// fail, when set, decides whether a Record call fails.
	fail func(outs []Outcome) error
}

// newHarness starts an engine. Unless o says otherwise the clock is a
// Manual one at the current second (receivers verify the timestamp against
// the wall clock), jitter is fixed at 0.5 and private addresses are allowed
// (receivers are on 127.0.0.1); a non-nil empty Policy.Allow asks for the
// policy as given.
func newHarness(t *testing.T, o Options, ds ...Destination) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewManual(time.Now().Truncate(time.Second))}
	if o.Clock == nil {
		o.Clock = h.clk
	}
	if o.Rand == nil {
		o.Rand = func() float64 { return 0.5 }
	}
	if !o.Policy.AllowPrivate && o.Policy.Allow == nil {
		o.Policy.AllowPrivate = true
	}
	o.Record = func(ctx context.Context, outs []Outcome) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fail != nil {
			if err := h.fail(outs); err != nil {
				return err
			}
		}
		h.outs = append(h.outs, outs...)
		return nil
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	e.SetDestinations(ds)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func (h *harness) outcomes(id string) []Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	var r []Outcome
	for _, o := range h.outs {
		if o.Message.ID == id {
			r = append(r, o)
		}
	}
	return r
}

// last returns id's latest recorded outcome.
func (h *harness) last(id string) (Outcome, bool) {
	os := h.outcomes(id)
	if len(os) == 0 {
		return Outcome{}, false
	}
	return os[len(os)-1], true
}

func (h *harness) is(id string, s State) func() bool {
	return func() bool {
		o, ok := h.last(id)
		return ok && o.State == s
	}
}

// wait polls cond until it holds; it fails the test after 10s. It waits
// for events, never for a deadline: time in the engine moves only by hand.
func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	for start := time.Now(); !cond(); {
		if time.Since(start) > 10*time.Second {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// advanceUntil moves the manual clock by step until cond holds (at most
// 1000 steps).
func (h *harness) advanceUntil(what string, step time.Duration, cond func() bool) {
	h.t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		h.clk.Advance(step)
		time.Sleep(time.Millisecond)
	}
	h.wait(what, cond)
}

// settle returns after the destination's dispatcher made a full pass that
// began after the call, so that "nothing was started" can be asserted.
func (h *harness) settle(dest string) {
	h.t.Helper()
	h.e.mu.Lock()
	q := h.e.queues[dest]
	h.e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if q == nil || !q.settle(ctx) {
		h.t.Fatalf("destination %q did not settle", dest)
	}
}

func (h *harness) stats(dest string) DestinationStats {
	for _, s := range h.e.Stats() {
		if s.Destination == dest {
			return s
		}
	}
	h.t.Fatalf("no stats for %q", dest)
	return DestinationStats{}
}

// hit is one request a receiver got.
type hit struct {
	id      string
	account string
	seq     uint64
	n       int // attempt number of this id at the receiver, from 1
	ts      string
	header  http.Header
}

// receiver is a test webhook endpoint on 127.0.0.1 that checks every
// request (method, headers, Standard Webhooks signature) and answers with
// handle.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook
	// slack receivers expect no signature headers.
	slack bool
	// ignoreTimestamp is for tests that move the manual clock more than
	// the verifier's 5 minutes of tolerance away from the wall clock.
	ignoreTimestamp bool
	handle          func(w http.ResponseWriter, r *http.Request, h hit)
	stop            chan struct{}

	mu   sync.Mutex
	hits []hit
	errs []string
}

type payload struct {
	Account string `json:"account"`
	Seq     uint64 `json:"seq"`
}

func body(account string, seq uint64) []byte {
	b, _ := json.Marshal(payload{Account: account, Seq: seq})
	return b
}

func newReceiver(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, h hit)) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t, wh: wh, handle: handle, stop: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() {
		close(rc.stop)
		rc.srv.Close()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, e := range rc.errs {
			t.Error(e)
		}
	})
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var errs []string
	if err != nil {
		errs = append(errs, "reading body: "+err.Error())
	}
	if r.Method != http.MethodPost {
		errs = append(errs, "method "+r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		errs = append(errs, "content-type "+ct)
	}
	if ua := r.Header.Get("User-Agent"); ua != "cairn-plays/1" {
		errs = append(errs, "user-agent "+ua)
	}
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		errs = append(errs, "body: "+err.Error())
	}
	id := r.Header.Get("webhook-id")
	if rc.slack {
		if id != "" || r.Header.Get("webhook-signature") != "" {
			errs = append(errs, "slack request carries signature headers")
		}
		id = fmt.Sprintf("%s/%d", p.Account, p.Seq)
	} else {
		verify := rc.wh.Verify
		if rc.ignoreTimestamp {
			verify = rc.wh.VerifyIgnoringTimestamp
		}
		if err := verify(b, r.Header); err != nil {
			errs = append(errs, fmt.Sprintf("signature of %s: %v", id, err))
		}
	}
	rc.mu.Lock()
	n := 1
	for _, x := range rc.hits {
		if x.id == id {
			n++
		}
	}
	ht := hit{id: id, account: p.Account, seq: p.Seq, n: n, ts: r.Header.Get("webhook-timestamp"), header: r.Header.Clone()}
	rc.hits = append(rc.hits, ht)
	rc.errs = append(rc.errs, errs...)
	rc.mu.Unlock()
	if rc.handle != nil {
		rc.handle(w, r, ht)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.hits)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

func (rc *receiver) dest(id string) Destination {
	d := Destination{ID: id, Kind: Webhook, URL: rc.srv.URL + "/hook", Secret: testSecret}
	if rc.slack {
		d.Kind, d.Secret = Slack, ""
	}
	return d
}

func msg(dest, account string, seq uint64) Message {
	return Message{
		ID:          fmt.Sprintf("msg_%s_%s_%d", dest, account, seq),
		Seq:         seq,
		Destination: dest,
		Account:     account,
		Body:        body(account, seq),
	}
}

// status answers every request with code and the given headers.
func status(code int, kv ...string) func(w http.ResponseWriter, r *http.Request, h hit) {
	return func(w http.ResponseWriter, r *http.Request, h hit) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		w.WriteHeader(code)
	}
}
