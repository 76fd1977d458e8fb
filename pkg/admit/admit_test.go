package admit

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/clock"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// retryOf returns the retry delay of a shed error, and fails the test for
// any other error.
func retryOf(t *testing.T, err error) time.Duration {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("error %v, want ResourceExhausted", err)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("error %v carries no RetryInfo", err)
	return 0
}

func TestTryAcquireBounds(t *testing.T) {
	type req struct {
		key  string
		n    int64
		shed Limit // "" when admitted
	}
	tests := []struct {
		name string
		lim  Limits
		reqs []req
	}{
		{name: "no bounds admit everything", lim: Limits{}, reqs: []req{{"a", 1 << 30, ""}, {"a", 1 << 30, ""}, {"", 5, ""}}},
		{name: "overall requests", lim: Limits{Requests: 2}, reqs: []req{{"a", 0, ""}, {"b", 0, ""}, {"c", 0, LimitRequests}}},
		{name: "overall bytes", lim: Limits{Bytes: 100}, reqs: []req{{"a", 60, ""}, {"b", 40, ""}, {"c", 1, LimitBytes}}},
		{name: "per-key requests leave other keys room", lim: Limits{Requests: 10, KeyRequests: 2}, reqs: []req{
			{"a", 0, ""}, {"a", 0, ""}, {"a", 0, LimitKeyRequests}, {"b", 0, ""}, {"b", 0, ""}, {"b", 0, LimitKeyRequests}}},
		{name: "per-key bytes", lim: Limits{Bytes: 1000, KeyBytes: 100}, reqs: []req{
			{"a", 80, ""}, {"a", 30, LimitKeyBytes}, {"b", 100, ""}}},
		{name: "the key's bound is checked before the overall one", lim: Limits{Requests: 1, KeyRequests: 1}, reqs: []req{
			{"a", 0, ""}, {"a", 0, LimitKeyRequests}, {"b", 0, LimitRequests}}},
		{name: "no key counts overall only", lim: Limits{Requests: 3, KeyRequests: 1}, reqs: []req{
			{"", 0, ""}, {"", 0, ""}, {"", 0, ""}, {"", 0, LimitRequests}}},
		{name: "a request larger than the bound is admitted alone", lim: Limits{Bytes: 100, KeyBytes: 50}, reqs: []req{
			{"a", 500, ""}, {"b", 1, LimitBytes}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New("test", tt.lim, clock.NewManual(t0))
			var held []*Ticket
			for i, r := range tt.reqs {
				tk, err := c.TryAcquire(r.key, r.n)
				if r.shed == "" {
					if err != nil {
						t.Fatalf("request %d (%q, %d bytes) = %v, want admitted", i, r.key, r.n, err)
					}
					held = append(held, tk)
					continue
				}
				if err == nil {
					t.Fatalf("request %d (%q, %d bytes) admitted, want shed by %s", i, r.key, r.n, r.shed)
				}
				retryOf(t, err)
				if c.Shed(r.shed) == 0 {
					t.Errorf("request %d shed, but not counted under %s: %v", i, r.shed, err)
				}
			}
			for _, tk := range held {
				tk.Release()
				tk.Release() // again: no effect
			}
			if st := c.Stats(); st.Requests != 0 || st.Bytes != 0 || st.Keys != 0 || st.Waiting != 0 {
				t.Errorf("after every release: %+v, want nothing held and no keys", st)
			}
			// Everything is free again.
			for i, r := range tt.reqs {
				if r.shed != "" {
					continue
				}
				tk, err := c.TryAcquire(r.key, r.n)
				if err != nil {
					t.Fatalf("request %d after release = %v", i, err)
				}
				defer tk.Release()
			}
		})
	}
}

func TestShedMessageNamesTheBound(t *testing.T) {
	tests := []struct {
		lim  Limits
		key  string
		want string
	}{
		{Limits{KeyRequests: 1}, "a", "gateway writes: too many requests in flight for this API key (limit 1)"},
		{Limits{KeyBytes: 10}, "a", "gateway writes: too many bytes in flight for this API key (limit 10)"},
		{Limits{Requests: 1}, "a", "gateway writes: overloaded: 1 requests in flight"},
		{Limits{Bytes: 10}, "a", "gateway writes: overloaded: 10 bytes in flight"},
	}
	for _, tt := range tests {
		c := New("gateway writes", tt.lim, clock.NewManual(t0))
		tk, err := c.TryAcquire(tt.key, 10)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.TryAcquire(tt.key, 10)
		if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, tt.want) || !strings.Contains(msg, "; retry in ") {
			t.Errorf("%+v: message %q, want it to start with %q and say when to retry", tt.lim, msg, tt.want)
		}
		tk.Release()
	}
}

// hold sets the controller's mean holding time by holding one ticket for d.
func hold(t *testing.T, c *Controller, clk *clock.Manual, d time.Duration) {
	t.Helper()
	tk, err := c.TryAcquire("warm-up", 0)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(d)
	tk.Release()
}

func TestRetryDelaySizedFromBacklog(t *testing.T) {
	tests := []struct {
		name    string
		lim     Limits
		hold    time.Duration
		held    []int64       // bytes of the requests in flight
		sheds   int           // requests shed before the one measured
		after   time.Duration // clock advance between those sheds and it
		n       int64         // bytes of the measured request
		want    time.Duration
		wantMsg string
	}{
		// 4 in flight of 4, mean hold 2 s: the next slot frees in about
		// 2 s × (4 in flight + this one) / 4.
		{name: "requests full", lim: Limits{Requests: 4}, hold: 2 * time.Second, held: []int64{0, 0, 0, 0}, want: 2500 * time.Millisecond},
		// Three shed just before will be back too.
		{name: "recent sheds lengthen it", lim: Limits{Requests: 4}, hold: 2 * time.Second, held: []int64{0, 0, 0, 0}, sheds: 3, want: 4 * time.Second},
		// ... and fade with a half-life of a second.
		{name: "older sheds count less", lim: Limits{Requests: 4}, hold: 2 * time.Second, held: []int64{0, 0, 0, 0}, sheds: 4, after: time.Second, want: 3500 * time.Millisecond},
		// 800 of 1000 bytes in flight, 400 more asked, hold 1 s.
		{name: "bytes", lim: Limits{Bytes: 1000}, hold: time.Second, held: []int64{800}, n: 400, want: 1200 * time.Millisecond},
		{name: "short holds give the minimum", lim: Limits{Requests: 1}, hold: time.Millisecond, held: []int64{0}, want: MinRetry},
		{name: "long holds give the maximum", lim: Limits{Requests: 1}, hold: time.Hour, held: []int64{0}, want: MaxRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			c := New("test", tt.lim, clk)
			hold(t, c, clk, tt.hold)
			for _, n := range tt.held {
				tk, err := c.TryAcquire("", n)
				if err != nil {
					t.Fatal(err)
				}
				defer tk.Release()
			}
			for range tt.sheds {
				if _, err := c.TryAcquire("", tt.n); err == nil {
					t.Fatal("admitted over the bound")
				}
			}
			clk.Advance(tt.after)
			_, err := c.TryAcquire("", tt.n)
			if got := retryOf(t, err); got != tt.want {
				t.Errorf("retry delay %s, want %s (%v)", got, tt.want, err)
			}
		})
	}
}

// waitFor yields until cond holds; the goroutines it waits for need no
// time to pass, only to be scheduled.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 10_000_000 {
			t.Fatalf("never: %s", what)
		}
		runtime.Gosched()
	}
}

func TestAcquireWaitsForRoom(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 1, Wait: 100 * time.Millisecond}, clk)
	first, err := c.Acquire(context.Background(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	var second *Ticket
	go func() {
		var err error
		second, err = c.Acquire(context.Background(), "b", 0)
		got <- err
	}()
	waitFor(t, "the second request waits", func() bool { return c.Stats().Waiting == 1 && clk.Waiters() == 1 })
	clk.Advance(30 * time.Millisecond)
	first.Release()
	if err := <-got; err != nil {
		t.Fatalf("waiting request = %v, want admitted when the first left", err)
	}
	if st := c.Stats(); st.Requests != 1 || st.Waiting != 0 || st.Admitted != 2 {
		t.Errorf("stats %+v", st)
	}
	second.Release()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if n, err := testutil.GatherAndCount(reg, "cairn_admit_wait_seconds"); err != nil || n != 1 {
		t.Errorf("wait histogram: %d series, %v", n, err)
	}
}

func TestAcquireShedsAfterTheWait(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 1, Wait: 100 * time.Millisecond}, clk)
	first, err := c.Acquire(context.Background(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	got := make(chan error, 1)
	go func() {
		_, err := c.Acquire(context.Background(), "b", 0)
		got <- err
	}()
	waitFor(t, "the second request waits", func() bool { return clk.Waiters() == 1 })
	clk.Advance(100 * time.Millisecond)
	retryOf(t, <-got)
	if st := c.Stats(); st.Waiting != 0 || st.Shed != 1 || st.Requests != 1 {
		t.Errorf("stats %+v, want one shed, none waiting, a's request in flight", st)
	}
}

func TestAcquireShedsAtOnceWhenTheBacklogCannotClear(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 1, Wait: 100 * time.Millisecond}, clk)
	// Requests are held a second on average: waiting 100 ms for the one in
	// flight to leave is pointless.
	hold(t, c, clk, time.Second)
	tk, err := c.Acquire(context.Background(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Release()
	_, err = c.Acquire(context.Background(), "b", 0)
	if d := retryOf(t, err); d != 2*time.Second {
		t.Errorf("retry %s, want 2s (1 in flight + this one, 1 s each)", d)
	}
	if clk.Waiters() != 0 {
		t.Error("the request waited")
	}
}

func TestAcquireCallerGoesAway(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 1, KeyRequests: 1, Wait: time.Second}, clk)
	tk, err := c.Acquire(context.Background(), "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Release()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, "b", 0)
		got <- err
	}()
	waitFor(t, "the request waits", func() bool { return c.Stats().Waiting == 1 })
	cancel()
	if err := <-got; status.Code(err) != codes.Canceled {
		t.Errorf("Acquire after the caller left = %v, want Canceled", err)
	}
	if st := c.Stats(); st.Shed != 0 || st.Keys != 1 {
		t.Errorf("stats %+v: a caller that left is not shed, and its key is dropped", st)
	}
}

func TestGrow(t *testing.T) {
	c := New("test", Limits{Bytes: 100, KeyBytes: 60}, clock.NewManual(t0))
	tk, err := c.TryAcquire("a", 10)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		n         int64
		want      int64
		wantShed  Limit
		wantBytes int64
	}{
		{name: "within the bounds", n: 40, want: 40, wantBytes: 50},
		{name: "up to the key's bound", n: 20, want: 10, wantBytes: 60},
		{name: "the key's bound is held whole", n: 1, wantShed: LimitKeyBytes, wantBytes: 60},
		{name: "nothing asked", n: 0, want: 0, wantBytes: 60},
	}
	for _, s := range steps {
		got, err := tk.Grow(s.n)
		if s.wantShed != "" {
			if err == nil || c.Shed(s.wantShed) == 0 {
				t.Errorf("%s: Grow(%d) = %d, %v; want shed by %s", s.name, s.n, got, err, s.wantShed)
			}
		} else if err != nil || got != s.want {
			t.Errorf("%s: Grow(%d) = %d, %v; want %d", s.name, s.n, got, err, s.want)
		}
		if tk.Bytes() != s.wantBytes || c.Stats().Bytes != s.wantBytes {
			t.Errorf("%s: ticket %d, controller %d bytes, want %d", s.name, tk.Bytes(), c.Stats().Bytes, s.wantBytes)
		}
	}
	// Another key takes the rest of the overall bound.
	other, err := c.TryAcquire("b", 40)
	if err != nil {
		t.Fatal(err)
	}
	small, err := c.TryAcquire("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := small.Grow(5); err == nil || c.Shed(LimitBytes) != 1 {
		t.Errorf("Grow past the overall bound = %d, %v, shed by bytes %d", got, err, c.Shed(LimitBytes))
	}
	for _, x := range []*Ticket{tk, other, small} {
		x.Release()
	}
	if st := c.Stats(); st.Bytes != 0 || st.Keys != 0 {
		t.Errorf("after release %+v", st)
	}
}

// TestConcurrentUse hammers one controller from many goroutines (run with
// -race): every ticket is released, and nothing is left over.
func TestConcurrentUse(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 8, Bytes: 1000, KeyRequests: 3, KeyBytes: 400}, clk)
	var (
		wg      sync.WaitGroup
		grewNot atomic.Uint64 // Grow refusals count as sheds too
	)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				tk, err := c.TryAcquire(fmt.Sprint("k", (g+i)%5), int64(i%150))
				if err != nil {
					if status.Code(err) != codes.ResourceExhausted {
						t.Errorf("TryAcquire = %v", err)
					}
					continue
				}
				if i%7 == 0 {
					if _, err := tk.Grow(20); err != nil {
						grewNot.Add(1)
					}
				}
				tk.Release()
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Requests != 0 || st.Bytes != 0 || st.Keys != 0 || st.Admitted+st.Shed != 16*200+grewNot.Load() {
		t.Errorf("after the run %+v", st)
	}
	// Every semaphore is whole again.
	var held []*Ticket
	for range 8 {
		tk, err := c.TryAcquire("", 125)
		if err != nil {
			t.Fatalf("bounds not whole after the run: %v", err)
		}
		held = append(held, tk)
	}
	for _, tk := range held {
		tk.Release()
	}
}

func TestMetrics(t *testing.T) {
	c := New("gateway writes", Limits{Requests: 1, Bytes: 10}, clock.NewManual(t0))
	tk, _ := c.TryAcquire("a", 4)
	_, _ = c.TryAcquire("b", 1)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP cairn_admit_inflight_bytes Bytes of the requests admitted and not yet done.
# TYPE cairn_admit_inflight_bytes gauge
cairn_admit_inflight_bytes{class="gateway writes"} 4
# HELP cairn_admit_inflight_requests Requests admitted and not yet done.
# TYPE cairn_admit_inflight_requests gauge
cairn_admit_inflight_requests{class="gateway writes"} 1
# HELP cairn_admit_shed_total Requests shed (ResourceExhausted, HTTP 429), by the bound that was full.
# TYPE cairn_admit_shed_total counter
cairn_admit_shed_total{class="gateway writes",limit="bytes"} 0
cairn_admit_shed_total{class="gateway writes",limit="key_bytes"} 0
cairn_admit_shed_total{class="gateway writes",limit="key_requests"} 0
cairn_admit_shed_total{class="gateway writes",limit="requests"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cairn_admit_inflight_bytes", "cairn_admit_inflight_requests", "cairn_admit_shed_total"); err != nil {
		t.Error(err)
	}
	tk.Release()
	// Two controllers (two classes) register side by side.
	if err := reg.Register(New("gateway reads", Limits{}, nil)); err != nil {
		t.Errorf("second class: %v", err)
	}
}

// TestAcquireBoundsTheQueue: at most one bound's worth of requests wait;
// the next is shed at once.
func TestAcquireBoundsTheQueue(t *testing.T) {
	tests := []struct {
		name string
		lim  Limits
		n    int64 // bytes of each request
	}{
		{name: "requests", lim: Limits{Requests: 1, Wait: time.Second}},
		{name: "bytes", lim: Limits{Bytes: 100, Wait: time.Second}, n: 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			c := New("test", tt.lim, clk)
			held, err := c.Acquire(context.Background(), "", max(tt.n, 100))
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				tk, err := c.Acquire(context.Background(), "", tt.n)
				if err == nil {
					tk.Release()
				}
				got <- err
			}()
			waitFor(t, "the first request waits", func() bool { return c.Stats().Waiting == 1 })
			if _, err := c.Acquire(context.Background(), "", tt.n); err == nil {
				t.Fatal("a second waiter was admitted")
			} else {
				retryOf(t, err)
			}
			if w := clk.Waiters(); w != 1 {
				t.Errorf("%d requests wait on the clock, want 1", w)
			}
			held.Release()
			if err := <-got; err != nil {
				t.Errorf("the waiting request = %v, want admitted", err)
			}
		})
	}
}

// TestTargetAdaptsTheBounds: while demand exceeds the bounds and requests
// are held longer than the target, the overall bound shrinks (by a quarter per target period, to no
// less than MinFraction and one request), and it grows back once they are
// quick again.
func TestTargetAdaptsTheBounds(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 8, Target: 100 * time.Millisecond}, clk)
	// run admits all it can (the next request is shed: demand exceeds the
	// bounds), holds them for d and reports the share after.
	run := func(d time.Duration) float64 {
		var held []*Ticket
		for {
			tk, err := c.TryAcquire("", 0)
			if err != nil {
				break
			}
			held = append(held, tk)
		}
		clk.Advance(d)
		for _, tk := range held {
			tk.Release()
		}
		return c.Stats().Fraction
	}
	// admits counts the requests admitted at once, and releases them.
	admits := func() int {
		var held []*Ticket
		for {
			tk, err := c.TryAcquire("", 0)
			if err != nil {
				retryOf(t, err)
				break
			}
			held = append(held, tk)
		}
		for _, tk := range held {
			tk.Release()
		}
		return len(held)
	}
	if n := admits(); n != 4 {
		t.Fatalf("%d admitted at the start, want half the bound, 4", n)
	}
	// Quick requests open it up, by a twentieth per target period.
	for range 15 {
		run(time.Millisecond)
		clk.Advance(100 * time.Millisecond)
	}
	if n := admits(); n != 8 {
		t.Fatalf("%d admitted after quick requests, want the bound, 8", n)
	}
	steps := []struct {
		name       string
		hold       time.Duration
		times      int
		wantFrac   float64
		wantAdmits int
	}{
		{name: "slow requests lower the bound", hold: time.Second, times: 1, wantFrac: 0.75, wantAdmits: 6},
		{name: "and again, once per target period", hold: time.Second, times: 2, wantFrac: 0.75 * 0.75 * 0.75, wantAdmits: 3},
		{name: "never below one request", hold: time.Second, times: 30, wantFrac: MinFraction, wantAdmits: 1},
		{name: "quick requests raise it back slowly", hold: time.Millisecond, times: 40, wantFrac: -1, wantAdmits: -1},
	}
	for _, s := range steps {
		var f float64
		for range s.times {
			f = run(s.hold)
		}
		if s.wantFrac >= 0 && f != s.wantFrac {
			t.Errorf("%s: share %v, want %v", s.name, f, s.wantFrac)
		}
		if s.wantAdmits >= 0 {
			if n := admits(); n != s.wantAdmits {
				t.Errorf("%s: %d admitted at once, want %d", s.name, n, s.wantAdmits)
			}
		}
	}
	if f := c.Stats().Fraction; f <= MinFraction || f > 1 {
		t.Errorf("after quick requests the share is %v, want it growing back", f)
	}
	for range 20 { // a twentieth per target period
		run(time.Millisecond)
		clk.Advance(100 * time.Millisecond)
	}
	if f := c.Stats().Fraction; f != 1 {
		t.Errorf("share %v after many quick requests, want 1", f)
	}
	if n := admits(); n != 8 {
		t.Errorf("%d admitted at once after recovering, want 8", n)
	}
}

// TestTargetNeedsPressure: requests slower than the target do not lower
// the bounds while none is shed or waits: below the bounds there is room.
func TestTargetNeedsPressure(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 8, Target: 100 * time.Millisecond}, clk)
	for range 10 {
		tk, err := c.TryAcquire("", 0)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		tk.Release()
	}
	if f := c.Stats().Fraction; f != StartFraction {
		t.Errorf("share %v after slow requests without pressure, want %v", f, StartFraction)
	}
}
