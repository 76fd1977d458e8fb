package deliver

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestDeliverSignedAndSlack(t *testing.T) {
	hook := newReceiver(t, nil)
	slack := newReceiver(t, status(http.StatusOK))
	slack.slack = true
	h := newHarness(t, Options{}, hook.dest("hook"), slack.dest("slack"))

	var ids []string
	for i := range 20 {
		for _, d := range []string{"hook", "slack"} {
			m := msg(d, "acct"+strconv.Itoa(i%4), uint64(i+1))
			ids = append(ids, m.ID)
			h.e.Enqueue(m)
		}
	}
	for _, id := range ids {
		h.wait(id+" delivered", h.is(id, Delivered))
	}
	for _, id := range ids {
		o, _ := h.last(id)
		if o.Message.Attempts != 1 || o.Message.LastError != "" || !o.Message.NextAt.IsZero() {
			t.Errorf("%s: attempts %d, last error %q, next %v; want 1, none, zero", id, o.Message.Attempts, o.Message.LastError, o.Message.NextAt)
		}
		if o.Status != http.StatusNoContent && o.Status != http.StatusOK {
			t.Errorf("%s: status %d", id, o.Status)
		}
		if o.At != h.clk.Now() {
			t.Errorf("%s: at %v, want the manual clock's %v", id, o.At, h.clk.Now())
		}
	}
	if n := hook.count(); n != 20 {
		t.Errorf("webhook receiver got %d requests, want 20", n)
	}
	if n := slack.count(); n != 20 {
		t.Errorf("slack receiver got %d requests, want 20", n)
	}
	for _, x := range hook.all() {
		if x.ts != strconv.FormatInt(h.clk.Now().Unix(), 10) {
			t.Errorf("webhook-timestamp %s, want the manual clock's", x.ts)
		}
	}
	s := h.stats("hook")
	if s.Delivered != 20 || s.Queued != 0 || s.InFlight != 0 || s.Breaker != "closed" || !s.Configured || s.P99 <= 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestStatusClassification(t *testing.T) {
	const maxBackoff = time.Hour
	var clk *clock.Manual // the running subtest's
	retryAt := func(d time.Duration) func(w http.ResponseWriter, r *http.Request, h hit) {
		return func(w http.ResponseWriter, r *http.Request, h hit) {
			w.Header().Set("Retry-After", clk.Now().Add(d).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
	tests := []struct {
		name    string
		handle  func(w http.ResponseWriter, r *http.Request, h hit)
		horizon time.Duration
		state   State
		errHas  string
		// delay is the wanted NextAt - At when retrying.
		delay time.Duration
	}{
		{name: "200", handle: status(200), state: Delivered},
		{name: "202", handle: status(202), state: Delivered},
		{name: "400", handle: status(400), state: Dead, errHas: "HTTP 400 Bad Request"},
		{name: "401", handle: status(401), state: Dead, errHas: "HTTP 401"},
		{name: "403", handle: status(403), state: Dead, errHas: "HTTP 403"},
		{name: "404", handle: status(404), state: Dead, errHas: "HTTP 404"},
		{name: "410 with reason", handle: func(w http.ResponseWriter, r *http.Request, h hit) {
			w.WriteHeader(410)
			_, _ = w.Write([]byte("channel_is_archived\n\x00"))
		}, state: Dead, errHas: "HTTP 410 Gone: channel_is_archived"},
		{name: "422", handle: status(422), state: Dead, errHas: "HTTP 422"},
		{name: "408", handle: status(408), state: Retrying, errHas: "HTTP 408", delay: 500 * time.Millisecond},
		{name: "409", handle: status(409), state: Retrying, errHas: "HTTP 409", delay: 500 * time.Millisecond},
		{name: "425", handle: status(425), state: Retrying, errHas: "HTTP 425", delay: 500 * time.Millisecond},
		{name: "500", handle: status(500), state: Retrying, errHas: "HTTP 500", delay: 500 * time.Millisecond},
		{name: "502", handle: status(502), state: Retrying, errHas: "HTTP 502", delay: 500 * time.Millisecond},
		{name: "429 without Retry-After", handle: status(429), state: Retrying, errHas: "HTTP 429", delay: 500 * time.Millisecond},
		{name: "429 Retry-After seconds", handle: status(429, "Retry-After", "7"), state: Retrying, errHas: "HTTP 429", delay: 7 * time.Second},
		{name: "503 Retry-After date", handle: retryAt(90 * time.Second),
			state: Retrying, errHas: "HTTP 503", delay: 90 * time.Second},
		{name: "503 Retry-After garbage", handle: status(503, "Retry-After", "soon"), state: Retrying, delay: 500 * time.Millisecond},
		{name: "500 ignores Retry-After", handle: status(500, "Retry-After", "7"), state: Retrying, delay: 500 * time.Millisecond},
		{name: "429 Retry-After capped at MaxBackoff", handle: status(429, "Retry-After", "999999999999"), state: Retrying, delay: maxBackoff},
		{name: "429 Retry-After capped at horizon", handle: status(429, "Retry-After", "3600"), horizon: 10 * time.Minute,
			state: Retrying, delay: 10 * time.Minute},
		{name: "302 not followed", handle: status(302, "Location", "http://127.0.0.1:1/elsewhere"), state: Retrying,
			errHas: "redirect not followed", delay: 500 * time.Millisecond},
		{name: "307 not followed", handle: status(307, "Location", "/other"), state: Retrying,
			errHas: "redirect not followed", delay: 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.handle)
			h := newHarness(t, Options{Horizon: tc.horizon, MaxBackoff: maxBackoff}, rc.dest("d"))
			clk = h.clk
			m := msg("d", "a", 1)
			m.Created = h.clk.Now()
			h.e.Enqueue(m)
			h.wait("an outcome", func() bool { _, ok := h.last(m.ID); return ok })
			h.settle("d")
			o, _ := h.last(m.ID)
			if o.State != tc.state {
				t.Fatalf("state %v, want %v (last error %q)", o.State, tc.state, o.Message.LastError)
			}
			if !strings.Contains(o.Message.LastError, tc.errHas) {
				t.Errorf("last error %q, want it to contain %q", o.Message.LastError, tc.errHas)
			}
			if code, _ := strconv.Atoi(tc.name[:3]); o.Status != code {
				t.Errorf("status %d, want %d", o.Status, code)
			}
			if o.Message.Attempts != 1 {
				t.Errorf("attempts %d, want 1", o.Message.Attempts)
			}
			if tc.state == Retrying {
				if got := o.Message.NextAt.Sub(o.At); got != tc.delay {
					t.Errorf("next attempt after %v, want %v", got, tc.delay)
				}
			} else if !o.Message.NextAt.IsZero() {
				t.Errorf("next at %v, want zero", o.Message.NextAt)
			}
			if n := rc.count(); n != 1 {
				t.Errorf("receiver got %d requests, want 1 (no redirect followed, no early retry)", n)
			}
		})
	}
}

func TestRetriesKeepIDAndSignature(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		if h.n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, Options{}, rc.dest("d"))
	m := msg("d", "a", 1)
	h.e.Enqueue(m)
	h.advanceUntil("delivery after two failures", 250*time.Millisecond, h.is(m.ID, Delivered))

	hits := rc.all()
	if len(hits) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(hits))
	}
	for _, x := range hits {
		if x.id != m.ID {
			t.Errorf("webhook-id %q, want %q on every attempt", x.id, m.ID)
		}
	}
	os := h.outcomes(m.ID)
	if len(os) != 3 || os[0].State != Retrying || os[1].State != Retrying || os[2].State != Delivered {
		t.Fatalf("outcomes %+v", os)
	}
	for i, o := range os {
		if o.Message.Attempts != i+1 {
			t.Errorf("outcome %d: attempts %d", i, o.Message.Attempts)
		}
	}
	// Full jitter at 0.5: half of 1s, then half of 2s.
	if d := os[0].Message.NextAt.Sub(os[0].At); d != 500*time.Millisecond {
		t.Errorf("first backoff %v, want 500ms", d)
	}
	if d := os[1].Message.NextAt.Sub(os[1].At); d != time.Second {
		t.Errorf("second backoff %v, want 1s", d)
	}
}

func TestNetworkFailuresRetry(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request, h hit)
		errHas string
	}{
		{name: "hang past the timeout", errHas: "timeout after 100ms", handle: func(w http.ResponseWriter, r *http.Request, h hit) {
			<-r.Context().Done()
		}},
		{name: "connection closed", errHas: "EOF", handle: func(w http.ResponseWriter, r *http.Request, h hit) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.handle)
			d := rc.dest("d")
			d.Timeout = 100 * time.Millisecond
			h := newHarness(t, Options{}, d)
			m := msg("d", "a", 1)
			h.e.Enqueue(m)
			h.wait("a retry", h.is(m.ID, Retrying))
			o, _ := h.last(m.ID)
			if !strings.Contains(o.Message.LastError, tc.errHas) || o.Status != 0 {
				t.Errorf("last error %q status %d, want %q and 0", o.Message.LastError, o.Status, tc.errHas)
			}
			if strings.Contains(o.Message.LastError, rc.srv.URL) {
				t.Errorf("last error %q repeats the URL", o.Message.LastError)
			}
		})
	}
}

func TestAccountOrdering(t *testing.T) {
	var failA1 atomic.Bool
	failA1.Store(true)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		if h.account == "A" && h.seq == 1 && failA1.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, Options{}, rc.dest("d"))
	// Enqueued out of order: Seq decides.
	h.e.Enqueue(msg("d", "A", 3), msg("d", "B", 2), msg("d", "A", 1), msg("d", "B", 4), msg("d", "A", 5))

	a1, a3, a5 := msg("d", "A", 1).ID, msg("d", "A", 3).ID, msg("d", "A", 5).ID
	h.wait("A1 retrying", h.is(a1, Retrying))
	h.wait("B delivered while A retries", func() bool {
		return h.is(msg("d", "B", 2).ID, Delivered)() && h.is(msg("d", "B", 4).ID, Delivered)()
	})
	// A retrying message holds back its account, and only its account.
	h.settle("d")
	for _, x := range rc.all() {
		if x.account == "A" && x.seq != 1 {
			t.Fatalf("A%d attempted while A1 was retrying", x.seq)
		}
	}
	if s := h.stats("d"); s.InFlight != 0 || s.Queued != 3 {
		t.Errorf("stats %+v; want A1, A3, A5 queued and nothing in flight", s)
	}

	failA1.Store(false)
	h.advanceUntil("A delivered", 250*time.Millisecond, h.is(a5, Delivered))
	var order []uint64
	for _, x := range rc.all() {
		if x.account == "A" {
			order = append(order, x.seq)
		}
	}
	if want := []uint64{1, 1, 3, 5}; !equal(order, want) {
		t.Errorf("account A attempts in order %v, want %v", order, want)
	}
	// Each of A's later messages went only after its predecessor's
	// outcome was recorded.
	h.mu.Lock()
	var seen []string
	for _, o := range h.outs {
		if o.Message.Account == "A" && o.State == Delivered {
			seen = append(seen, o.Message.ID)
		}
	}
	h.mu.Unlock()
	if len(seen) != 3 || seen[0] != a1 || seen[1] != a3 || seen[2] != a5 {
		t.Errorf("A recorded as delivered in order %v", seen)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDestinationIsolation(t *testing.T) {
	hang := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		select {
		case <-r.Context().Done():
		case <-make(chan struct{}): // forever, until the engine gives up the request
		}
	})
	ok := newReceiver(t, nil)
	slow := hang.dest("slow")
	slow.Timeout = time.Hour
	slow.Concurrency = 2
	h := newHarness(t, Options{}, slow, ok.dest("fast"))

	for i := range 10 {
		h.e.Enqueue(msg("slow", "acct"+strconv.Itoa(i), uint64(i)))
	}
	h.wait("slow destination saturated", func() bool { return hang.count() == 2 })
	var ids []string
	for i := range 100 {
		m := msg("fast", "acct"+strconv.Itoa(i%7), uint64(i))
		ids = append(ids, m.ID)
		h.e.Enqueue(m)
	}
	for _, id := range ids {
		h.wait(id+" delivered", h.is(id, Delivered))
	}
	if s := h.stats("slow"); s.InFlight != 2 || s.Queued != 8 {
		t.Errorf("slow stats %+v; want 2 in flight, 8 queued", s)
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		<-release // hold the successful probe so the half-open state can be seen
		w.WriteHeader(http.StatusOK)
	})
	d := rc.dest("d")
	d.Concurrency = 4
	// Rand 0: no backoff, so only the breaker spaces the attempts.
	h := newHarness(t, Options{BreakerFailures: 3, BreakerCooldown: 30 * time.Second, Rand: func() float64 { return 0 }}, d)
	var ids []string
	for i := range 6 {
		m := msg("d", "acct"+strconv.Itoa(i), 1)
		ids = append(ids, m.ID)
		h.e.Enqueue(m)
	}
	h.wait("breaker open", func() bool {
		s := h.stats("d")
		return s.Breaker == "open" && s.InFlight == 0
	})
	h.settle("d")
	opened := rc.count()
	if opened < 3 || opened > 3+d.Concurrency-1 {
		t.Fatalf("%d attempts before the breaker opened; want 3 and at most the ones already in flight", opened)
	}
	h.clk.Advance(29 * time.Second)
	h.settle("d")
	if n := rc.count(); n != opened {
		t.Fatalf("%d attempts while open, want none", n-opened)
	}
	failed := h.stats("d").FailedAttempts

	// Cooldown over: one probe, which fails and opens the breaker again.
	h.clk.Advance(time.Second)
	h.wait("failed probe", func() bool { s := h.stats("d"); return s.FailedAttempts == failed+1 && s.InFlight == 0 })
	h.settle("d")
	if n := rc.count(); n != opened+1 {
		t.Fatalf("%d attempts after the cooldown, want one probe", n-opened)
	}
	if s := h.stats("d"); s.Breaker != "open" {
		t.Fatalf("breaker %s after a failed probe, want open", s.Breaker)
	}

	failing.Store(false)
	h.clk.Advance(30 * time.Second)
	h.wait("successful probe in flight", func() bool { return rc.count() == opened+2 })
	h.settle("d")
	if s := h.stats("d"); s.Breaker != "half-open" || s.InFlight != 1 {
		t.Fatalf("stats %+v during the probe; want half-open with one request in flight", s)
	}
	close(release)
	for _, id := range ids {
		h.wait(id+" delivered", h.is(id, Delivered))
	}
	if s := h.stats("d"); s.Breaker != "closed" {
		t.Errorf("breaker %s after a successful probe, want closed", s.Breaker)
	}
	if n := rc.count(); n != opened+2+5 {
		t.Errorf("%d attempts in all, want %d", n, opened+2+5)
	}
}

func TestHorizon(t *testing.T) {
	t.Run("failing until the horizon", func(t *testing.T) {
		rc := newReceiver(t, status(http.StatusInternalServerError))
		rc.ignoreTimestamp = true // the clock moves past the verifier's tolerance
		h := newHarness(t, Options{Horizon: 10 * time.Minute, Rand: func() float64 { return 0.999 }}, rc.dest("d"))
		m := msg("d", "a", 1)
		m.Created = h.clk.Now()
		deadline := m.Created.Add(10 * time.Minute)
		h.e.Enqueue(m)
		h.advanceUntil("dead", 5*time.Second, h.is(m.ID, Dead))
		o, _ := h.last(m.ID)
		if !strings.Contains(o.Message.LastError, "horizon") || !strings.Contains(o.Message.LastError, "HTTP 500") {
			t.Errorf("last error %q", o.Message.LastError)
		}
		if o.Message.Attempts < 5 {
			t.Errorf("attempts %d; want retries until the horizon", o.Message.Attempts)
		}
		for _, x := range h.outcomes(m.ID) {
			if x.State == Retrying && x.Message.NextAt.After(deadline) {
				t.Errorf("retry scheduled at %v, after the horizon %v", x.Message.NextAt, deadline)
			}
		}
		if s := h.stats("d"); s.Dead != 1 || s.Queued != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("enqueued past the horizon", func(t *testing.T) {
		rc := newReceiver(t, nil)
		h := newHarness(t, Options{}, rc.dest("d"))
		m := msg("d", "a", 1)
		m.Created = h.clk.Now().Add(-25 * time.Hour)
		m.Attempts, m.LastError = 7, "HTTP 503"
		h.e.Enqueue(m)
		h.wait("dead", h.is(m.ID, Dead))
		o, _ := h.last(m.ID)
		if o.Message.Attempts != 7 || o.Status != 0 || !strings.Contains(o.Message.LastError, "HTTP 503") {
			t.Errorf("outcome %+v; want no further attempt", o)
		}
		if n := rc.count(); n != 0 {
			t.Errorf("receiver got %d requests, want none", n)
		}
	})
}

func TestAddressPolicyAtDial(t *testing.T) {
	rc := newReceiver(t, nil)
	tests := []struct {
		name      string
		policy    Policy
		delivered bool
	}{
		{name: "default refuses loopback", policy: Policy{Allow: []netip.Prefix{}}, delivered: false},
		{name: "AllowPrivate", policy: Policy{AllowPrivate: true}, delivered: true},
		{name: "Allow prefix", policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, delivered: true},
		{name: "Allow another prefix", policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, delivered: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := rc.count()
			h := newHarness(t, Options{Policy: tc.policy})
			// The destination passed its apply-time check as a name that
			// later resolved to loopback (DNS rebinding): configure it
			// behind the engine's policy.
			c, err := rc.dest("d").compile(Policy{AllowPrivate: true})
			if err != nil {
				t.Fatal(err)
			}
			h.e.mu.Lock()
			q := h.e.queueLocked("d")
			h.e.mu.Unlock()
			q.configure(c, "")
			m := msg("d", "a", 1)
			h.e.Enqueue(m)
			h.wait("an outcome", func() bool { _, ok := h.last(m.ID); return ok })
			o, _ := h.last(m.ID)
			if tc.delivered {
				if o.State != Delivered {
					t.Fatalf("outcome %v %q, want delivered", o.State, o.Message.LastError)
				}
				return
			}
			if o.State != Retrying || !strings.Contains(o.Message.LastError, "loopback") {
				t.Errorf("outcome %v %q, want retrying with a loopback refusal", o.State, o.Message.LastError)
			}
			if n := rc.count() - before; n != 0 {
				t.Errorf("receiver got %d requests through a refused address", n)
			}
		})
	}
}

func TestSetDestinationsRefusesByPolicy(t *testing.T) {
	rc := newReceiver(t, nil)
	h := newHarness(t, Options{Policy: Policy{Allow: []netip.Prefix{}}})
	h.e.SetDestinations([]Destination{rc.dest("d")}) // 127.0.0.1 under the default policy
	m := msg("d", "a", 1)
	h.e.Enqueue(m)
	h.settle("d")
	s := h.stats("d")
	if s.Configured || !strings.Contains(s.LastError, "loopback") || s.Queued != 1 {
		t.Errorf("stats %+v; want unconfigured with the reason, message waiting", s)
	}
	if _, ok := h.last(m.ID); ok || rc.count() != 0 {
		t.Error("message of a refused destination was attempted")
	}
}

func TestUnknownDestinationWaits(t *testing.T) {
	rc := newReceiver(t, nil)
	h := newHarness(t, Options{})
	m := msg("later", "a", 1)
	h.e.Enqueue(m)
	h.settle("later")
	if _, ok := h.last(m.ID); ok {
		t.Fatal("message for an unknown destination has an outcome")
	}
	if s := h.stats("later"); s.Configured || s.Queued != 1 {
		t.Errorf("stats %+v", s)
	}
	h.e.SetDestinations([]Destination{rc.dest("later")})
	h.wait("delivered", h.is(m.ID, Delivered))

	// Removed again: new messages wait, and return when it does.
	h.e.SetDestinations(nil)
	m2 := msg("later", "a", 2)
	h.e.Enqueue(m2)
	h.settle("later")
	if _, ok := h.last(m2.ID); ok {
		t.Fatal("message for a removed destination has an outcome")
	}
	h.e.SetDestinations([]Destination{rc.dest("later")})
	h.wait("delivered", h.is(m2.ID, Delivered))
}

func TestEnqueueIdempotent(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		<-release
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, Options{}, rc.dest("d"))
	m := msg("d", "a", 1)
	h.e.Enqueue(m, m)
	h.wait("in flight", func() bool { return rc.count() == 1 })
	h.e.Enqueue(m) // the app re-enqueues its outbox
	close(release)
	h.wait("delivered", h.is(m.ID, Delivered))
	h.settle("d")
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
	if n := len(h.outcomes(m.ID)); n != 1 {
		t.Errorf("%d outcomes, want 1", n)
	}
}

func TestRecorderFailureHoldsAccount(t *testing.T) {
	var recordedA1 atomic.Bool
	var early atomic.Bool
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		if h.seq == 2 && !recordedA1.Load() {
			early.Store(true)
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, Options{}, rc.dest("d"))
	fails := 0
	h.fail = func(outs []Outcome) error {
		if fails < 3 {
			fails++
			return errors.New("disk full")
		}
		for _, o := range outs {
			if o.Message.Seq == 1 {
				recordedA1.Store(true)
			}
		}
		return nil
	}
	a1, a2 := msg("d", "A", 1), msg("d", "A", 2)
	h.e.Enqueue(a1, a2)
	h.advanceUntil("both delivered", 100*time.Millisecond, func() bool {
		return h.is(a1.ID, Delivered)() && h.is(a2.ID, Delivered)()
	})
	if early.Load() {
		t.Error("A2 was sent before A1's outcome was recorded")
	}
	if n := rc.count(); n != 2 {
		t.Errorf("receiver got %d requests, want 2: a failed record must not cause a resend", n)
	}
}

func TestShutdownCancelsInFlight(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) { <-r.Context().Done() })
	var mu sync.Mutex
	var recorded []Outcome
	e, err := New(Options{
		Policy: Policy{AllowPrivate: true},
		Record: func(ctx context.Context, outs []Outcome) error {
			mu.Lock()
			recorded = append(recorded, outs...)
			mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := rc.dest("d")
	d.Timeout = time.Hour
	e.SetDestinations([]Destination{d})
	e.Enqueue(msg("d", "a", 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	for start := time.Now(); rc.count() == 0; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("no request")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recorded) != 0 {
		t.Errorf("recorded %+v for a cancelled attempt; want nothing (the message stays pending)", recorded)
	}
	if err := e.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestResponseBodyCap(t *testing.T) {
	const limit = 1024
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 32<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			default:
			}
		}
	})
	var read atomic.Int64
	base := newTransport(Policy{AllowPrivate: true})
	defer base.CloseIdleConnections()
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			resp.Body = countingBody{resp.Body, &read}
		}
		return resp, err
	})
	d := rc.dest("d")
	d.Timeout = time.Hour // an endless body must not be read until a timeout
	h := newHarness(t, Options{MaxResponseBytes: limit, Transport: rt}, d)
	m := msg("d", "a", 1)
	h.e.Enqueue(m)
	h.wait("delivered", h.is(m.ID, Delivered))
	if n := read.Load(); n > limit {
		t.Errorf("read %d bytes of the response, want at most %d", n, limit)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type countingBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingBody) Close() error { return c.rc.Close() }

func TestMetrics(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit) {
		if h.account == "dead" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	reg := prometheus.NewRegistry()
	h := newHarness(t, Options{Registerer: reg}, rc.dest("d"))
	ok, dead := msg("d", "ok", 1), msg("d", "dead", 1)
	h.e.Enqueue(ok, dead)
	h.wait("outcomes", func() bool { return h.is(ok.ID, Delivered)() && h.is(dead.ID, Dead)() })
	h.settle("d")
	e := h.e
	checks := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"delivered", e.m.deliveries.WithLabelValues("d", "delivered"), 1},
		{"dead result", e.m.deliveries.WithLabelValues("d", "dead"), 1},
		{"dead total", e.m.dead.WithLabelValues("d"), 1},
		{"queue", e.m.queue.WithLabelValues("d"), 0},
	}
	for _, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(e.m.seconds, "cairn_plays_delivery_seconds"); n != 1 {
		t.Errorf("%d latency series, want 1", n)
	}
	if _, err := New(Options{Record: func(context.Context, []Outcome) error { return nil }, Registerer: reg}); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		d      Destination
		errHas string
	}{
		{"ok webhook", Destination{ID: "a", Kind: Webhook, URL: "https://example.com/h", Secret: testSecret}, ""},
		{"ok slack", Destination{ID: "a", Kind: Slack, URL: "https://hooks.slack.com/services/T/B/X"}, ""},
		{"no id", Destination{Kind: Slack, URL: "https://example.com"}, "id is empty"},
		{"no kind", Destination{ID: "a", URL: "https://example.com"}, "kind"},
		{"bad url", Destination{ID: "a", Kind: Slack, URL: "ftp://example.com"}, "scheme"},
		{"no secret", Destination{ID: "a", Kind: Webhook, URL: "https://example.com"}, "secret is empty"},
		{"bad secret", Destination{ID: "a", Kind: Webhook, URL: "https://example.com", Secret: "whsec_!!"}, "not base64"},
		{"negative concurrency", Destination{ID: "a", Kind: Slack, URL: "https://example.com", Concurrency: -1}, "concurrency"},
		{"negative timeout", Destination{ID: "a", Kind: Slack, URL: "https://example.com", Timeout: -1}, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.d.Validate(Policy{})
			if tc.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %v, want it to mention %q", err, tc.errHas)
			}
		})
	}
}

// TestNewRequiresRecord keeps New from panicking later on a nil Recorder.
func TestNewRequiresRecord(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Record succeeded")
	}
	if _, err := New(Options{Record: func(context.Context, []Outcome) error { return nil },
		Policy: Policy{Allow: []netip.Prefix{{}}}}); err == nil {
		t.Fatal("New with an invalid Allow prefix succeeded")
	}
}
