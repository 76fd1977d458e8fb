// Package admit is Cairn's admission control: it bounds the requests and
// the bytes a process handles at once, per API key and overall, and sheds
// what is over the bound instead of queueing it.
//
// A Controller guards one class of work (the gateway's writes, ingestion's
// Subscribe streams, ...). A request asks for a Ticket with the bytes it will
// hold (for an HTTP body, its Content-Length, before reading it). When every
// bound has room it is admitted at once; otherwise it waits at most
// Limits.Wait, and only when the backlog ahead of it is expected to clear in
// that time, then it is shed: the error is ResourceExhausted with a
// google.rpc.RetryInfo (pkg/apierr.Exhausted), which the gateway answers as
// 429 with Retry-After. The delay is sized from the backlog: the requests
// (or bytes) in flight, waiting and recently shed, drained at the limit per
// mean holding time. So callers are told to come back when there is likely
// room, and accepted requests keep a bounded latency.
//
// The bounds themselves are golang.org/x/sync/semaphore weighted semaphores
// (FIFO, with cancellation); the package adds per-key tables, the wait
// bound, the retry sizing and metrics. Tap admits gRPC calls before their
// messages are read; Body counts a body of unknown length as it is read;
// Reclaimer returns memory to the OS once the load is gone.
package admit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
)

// Limits are the bounds of one Controller. A zero bound is no bound.
type Limits struct {
	// Requests bounds the requests admitted at once, over every key.
	Requests int64
	// Bytes bounds the bytes admitted at once, over every key.
	Bytes int64
	// KeyRequests bounds the requests admitted at once for one key.
	KeyRequests int64
	// KeyBytes bounds the bytes admitted at once for one key.
	KeyBytes int64
	// Wait is the longest a request waits for room before it is shed; 0
	// sheds at once.
	Wait time.Duration
	// Target, when set, is the mean time admitted requests may be held
	// while demand exceeds the bounds. Above it the controller lowers its
	// overall bounds (to as little as MinFraction of them, never below one
	// request), so that fewer requests share the CPU, disk and upstreams and
	// each is done sooner; below it they grow back. By Little's law a bound on what is in flight is a
	// bound on latency only for a given throughput, and throughput varies
	// with the machine and the request mix: the target makes the bound
	// follow it. Leave it unset for classes held for long on purpose
	// (streams).
	Target time.Duration
}

// MinFraction is the least share of its configured overall bounds a
// controller with a Target keeps; it starts at StartFraction, so that the
// first burst after a start cannot fill the whole bounds before the first
// request has told how long requests take.
const (
	MinFraction   = 1.0 / 32
	StartFraction = 1.0 / 2
)

func startFraction(l Limits) float64 {
	if l.Target > 0 {
		return StartFraction
	}
	return 1
}

// Retry delays are kept within these bounds: below the minimum a client
// would only come back to be shed again, above the maximum the estimate is
// no longer worth much.
const (
	MinRetry = 100 * time.Millisecond
	MaxRetry = time.Minute
)

// holdWeight is the weight of each new holding time in the running mean;
// shedHalfLife is how fast the memory of shed requests fades.
const (
	holdWeight   = 0.1
	shedHalfLife = time.Second
)

// Limit names the bound that shed a request, in metrics and messages.
type Limit string

// The four bounds.
const (
	LimitKeyRequests Limit = "key_requests"
	LimitKeyBytes    Limit = "key_bytes"
	LimitRequests    Limit = "requests"
	LimitBytes       Limit = "bytes"
)

// Controller admits one class of requests. It is safe for concurrent use.
type Controller struct {
	name string
	lim  Limits
	clk  clock.Clock

	mu   sync.Mutex
	all  scope
	keys map[string]*scope
	// hold is the running mean of how long admitted requests are held, in
	// seconds; 0 until the first release.
	hold float64
	// frac is the share of the overall bounds in use (1 without a
	// Target); adjusted is when it last changed.
	frac     float64
	adjusted time.Time
	// pressed counts requests shed or made to wait since then: the share
	// moves only while demand exceeds the bounds.
	pressed int

	admitted atomic.Uint64
	shed     [4]atomic.Uint64
	metrics  *metrics
}

// scope is the state of one bound pair: overall or one key's. Counts are
// guarded by Controller.mu; the semaphores have their own locks.
type scope struct {
	key                   string
	reqs, bytes           *semaphore.Weighted // nil: unbounded
	reqLimit, byteLimit   int64
	inReqs, inBytes       int64
	waitReqs, waitBytes   int64
	shedReqs, shedBytes   float64 // decayed counts of recent sheds
	shedAt                time.Time
	refs                  int // tickets and waiters using a key scope
	reqLimitN, byteLimitN Limit
}

func newScope(key string, reqs, bytes int64, rn, bn Limit) scope {
	s := scope{key: key, reqLimit: reqs, byteLimit: bytes, reqLimitN: rn, byteLimitN: bn}
	if reqs > 0 {
		s.reqs = semaphore.NewWeighted(reqs)
	}
	if bytes > 0 {
		s.bytes = semaphore.NewWeighted(bytes)
	}
	return s
}

// New returns a controller for the class name (it labels the metrics and
// starts refusal messages, e.g. "gateway writes") with limits l; c paces the
// wait and measures holding times.
func New(name string, l Limits, c clock.Clock) *Controller {
	if c == nil {
		c = clock.Real{}
	}
	return &Controller{
		name:    name,
		lim:     l,
		clk:     c,
		all:     newScope("", l.Requests, l.Bytes, LimitRequests, LimitBytes),
		keys:    map[string]*scope{},
		frac:    startFraction(l),
		metrics: newMetrics(name),
	}
}

// Name is the controller's class name.
func (c *Controller) Name() string { return c.name }

// Limits returns the controller's bounds.
func (c *Controller) Limits() Limits { return c.lim }

// Ticket is an admitted request. Release it when the request is done; Grow
// charges bytes it turns out to hold beyond those admitted.
type Ticket struct {
	c        *Controller
	k        *scope // nil without a per-key bound
	kn, an   int64  // bytes charged to the key and overall
	start    time.Time
	released atomic.Bool
}

// TryAcquire admits a request of n bytes for key without waiting, or sheds
// it. An empty key counts against the overall bounds only.
func (c *Controller) TryAcquire(key string, n int64) (*Ticket, error) {
	return c.acquire(context.Background(), key, n, false)
}

// Acquire admits a request of n bytes for key, waiting at most Limits.Wait
// for room, or sheds it with ResourceExhausted and a RetryInfo sized from
// the backlog. It does not wait when the backlog ahead is not expected to
// clear within the wait. An empty key counts against the overall bounds
// only. A request larger than a byte bound is charged the whole bound, so
// it is admitted alone rather than never. When ctx ends first, its error is
// returned as a status.
func (c *Controller) Acquire(ctx context.Context, key string, n int64) (*Ticket, error) {
	return c.acquire(ctx, key, n, c.lim.Wait > 0)
}

func (c *Controller) acquire(ctx context.Context, key string, n int64, mayWait bool) (*Ticket, error) {
	if n < 0 {
		n = 0
	}
	t := &Ticket{c: c}
	c.mu.Lock()
	t.k = c.refKeyLocked(key)
	lowered := c.overLoweredLocked(capped(n, c.all.byteLimit))
	c.mu.Unlock()
	scopes := t.scopes()
	charge := func(s *scope) int64 { return capped(n, s.byteLimit) }
	if lowered != "" {
		// Requests are taking too long: shed at once, waiting would only
		// add to it.
		return nil, c.refuse(t, &c.all, lowered, charge(&c.all))
	}

	failed, limit := tryAll(scopes, charge)
	if failed == nil {
		return c.admit(t, charge, 0), nil
	}
	if !mayWait || !c.enqueue(scopes, failed, charge) {
		return nil, c.refuse(t, failed, limit, charge(failed))
	}

	began := c.clk.Now()
	wctx, cancel := context.WithCancel(ctx)
	if _, real := c.clk.(clock.Real); real {
		// A timer, not a goroutine, per waiter: under overload there
		// are many.
		timer := time.AfterFunc(c.lim.Wait, cancel)
		defer timer.Stop()
	} else {
		timeout := c.clk.After(c.lim.Wait)
		go func() {
			select {
			case <-timeout:
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	failed, limit = acquireAll(wctx, scopes, charge)
	cancel()
	c.mu.Lock()
	for _, s := range scopes {
		s.waitReqs--
		s.waitBytes -= charge(s)
	}
	c.mu.Unlock()
	if failed != nil {
		if err := ctx.Err(); err != nil {
			c.mu.Lock()
			c.unrefLocked(t.k)
			c.mu.Unlock()
			return nil, status.FromContextError(err).Err()
		}
		return nil, c.refuse(t, failed, limit, charge(failed))
	}
	return c.admit(t, charge, c.clk.Now().Sub(began)), nil
}

// scopes lists the bounds a ticket is charged to: its key's, then overall.
func (t *Ticket) scopes() []*scope {
	if t.k != nil {
		return []*scope{t.k, &t.c.all}
	}
	return []*scope{&t.c.all}
}

func capped(n, limit int64) int64 {
	if limit > 0 && n > limit {
		return limit
	}
	return n
}

// tryAll takes a slot and the bytes from every scope, or none; it returns
// the scope and the bound that had no room (nil when all did).
func tryAll(scopes []*scope, charge func(*scope) int64) (*scope, Limit) {
	for i, s := range scopes {
		if s.reqs != nil && !s.reqs.TryAcquire(1) {
			releaseAll(scopes[:i], charge)
			return s, s.reqLimitN
		}
		if s.bytes != nil && !s.bytes.TryAcquire(charge(s)) {
			if s.reqs != nil {
				s.reqs.Release(1)
			}
			releaseAll(scopes[:i], charge)
			return s, s.byteLimitN
		}
	}
	return nil, ""
}

// acquireAll is tryAll waiting until ctx ends.
func acquireAll(ctx context.Context, scopes []*scope, charge func(*scope) int64) (*scope, Limit) {
	for i, s := range scopes {
		if s.reqs != nil && s.reqs.Acquire(ctx, 1) != nil {
			releaseAll(scopes[:i], charge)
			return s, s.reqLimitN
		}
		if s.bytes != nil && s.bytes.Acquire(ctx, charge(s)) != nil {
			if s.reqs != nil {
				s.reqs.Release(1)
			}
			releaseAll(scopes[:i], charge)
			return s, s.byteLimitN
		}
	}
	return nil, ""
}

func releaseAll(scopes []*scope, charge func(*scope) int64) {
	for _, s := range scopes {
		if s.reqs != nil {
			s.reqs.Release(1)
		}
		if s.bytes != nil {
			s.bytes.Release(charge(s))
		}
	}
}

// admit records an admitted ticket.
func (c *Controller) admit(t *Ticket, charge func(*scope) int64, waited time.Duration) *Ticket {
	c.mu.Lock()
	for _, s := range t.scopes() {
		s.inReqs++
		s.inBytes += charge(s)
	}
	t.an = charge(&c.all)
	if t.k != nil {
		t.kn = charge(t.k)
	}
	c.mu.Unlock()
	t.start = c.clk.Now()
	c.admitted.Add(1)
	c.metrics.wait.Observe(waited.Seconds())
	return t
}

// Release returns the ticket's slot and bytes. Calling it again does
// nothing.
func (t *Ticket) Release() {
	if t == nil || !t.released.CompareAndSwap(false, true) {
		return
	}
	c := t.c
	held := c.clk.Now().Sub(t.start).Seconds()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold == 0 {
		c.hold = held
	} else {
		c.hold += holdWeight * (held - c.hold)
	}
	c.adaptLocked(c.clk.Now())
	for _, s := range t.scopes() {
		n := t.an
		if s == t.k {
			n = t.kn
		}
		s.inReqs--
		s.inBytes -= n
		if s.reqs != nil {
			s.reqs.Release(1)
		}
		if s.bytes != nil && n > 0 {
			s.bytes.Release(n)
		}
	}
	c.unrefLocked(t.k)
}

// Grow charges up to n more bytes to an admitted ticket without waiting (a
// body turned out longer than announced): as many as the byte bounds allow
// one request to hold, at least one. It returns how many it charged, or
// sheds them: the ticket keeps what it had and must still be released.
func (t *Ticket) Grow(n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	c := t.c
	c.mu.Lock()
	for _, s := range t.scopes() {
		held := t.an
		if s == t.k {
			held = t.kn
		}
		if s.byteLimit > 0 {
			n = min(n, s.byteLimit-held)
		}
	}
	c.mu.Unlock()
	scopes := t.scopes()
	if n <= 0 {
		// The ticket holds a whole bound already.
		s := scopes[len(scopes)-1]
		if t.k != nil && t.k.byteLimit > 0 && t.kn >= t.k.byteLimit {
			s = t.k
		}
		return 0, c.refuse(nil, s, s.byteLimitN, 1)
	}
	var got []*scope
	for _, s := range scopes {
		if s.bytes != nil && !s.bytes.TryAcquire(n) {
			for _, g := range got {
				g.bytes.Release(n)
			}
			return 0, c.refuse(nil, s, s.byteLimitN, n)
		}
		got = append(got, s)
	}
	c.mu.Lock()
	for _, s := range scopes {
		s.inBytes += n
	}
	t.an += n
	if t.k != nil {
		t.kn += n
	}
	c.mu.Unlock()
	return n, nil
}

// Bytes is the number of bytes the ticket holds overall.
func (t *Ticket) Bytes() int64 {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.an
}

// adaptLocked moves the share of the overall bounds in use towards the
// Target, at most once per Target and only while requests are shed or wait
// (demand beyond the bounds; below them, shedding would only turn away
// work there is room for): down by a quarter while the mean hold is above
// the Target, back up by a twentieth of the bounds while it is well below
// (additive increase, multiplicative decrease, as TCP does).
func (c *Controller) adaptLocked(now time.Time) {
	target := c.lim.Target.Seconds()
	if target <= 0 || now.Sub(c.adjusted) < c.lim.Target || c.pressed == 0 {
		return
	}
	switch {
	case c.hold > target && c.frac > MinFraction:
		c.frac = max(MinFraction, c.frac*0.75)
	case c.hold < 0.8*target && c.frac < 1:
		c.frac = min(1, c.frac+0.05)
	default:
		return
	}
	c.adjusted, c.pressed = now, 0
}

// overLoweredLocked reports the overall bound a request of n bytes would
// exceed as lowered by the Target ("" when none). A request alone is
// always admitted.
func (c *Controller) overLoweredLocked(n int64) Limit {
	if c.frac >= 1 || c.all.inReqs == 0 {
		return ""
	}
	if r := c.all.reqLimit; r > 0 && float64(c.all.inReqs+1) > max(1, math.Floor(c.frac*float64(r))) {
		return LimitRequests
	}
	if b := c.all.byteLimit; b > 0 && float64(c.all.inBytes+n) > c.frac*float64(b) {
		return LimitBytes
	}
	return ""
}

// refKeyLocked returns key's scope, created on first use, with one more
// reference; nil when there is no key or no per-key bound.
func (c *Controller) refKeyLocked(key string) *scope {
	if key == "" || (c.lim.KeyRequests <= 0 && c.lim.KeyBytes <= 0) {
		return nil
	}
	s := c.keys[key]
	if s == nil {
		ns := newScope(key, c.lim.KeyRequests, c.lim.KeyBytes, LimitKeyRequests, LimitKeyBytes)
		s = &ns
		c.keys[key] = s
	}
	s.refs++
	return s
}

// unrefLocked drops a reference to a key scope, and the scope with its
// last, so the table holds only keys with requests in flight or waiting.
func (c *Controller) unrefLocked(s *scope) {
	if s == nil {
		return
	}
	if s.refs--; s.refs == 0 {
		delete(c.keys, s.key)
	}
}

// enqueue counts a request as waiting in every scope, when it is worth
// waiting: the scope that had no room (failed) holds fewer waiting than one
// bound's worth, and the backlog ahead of the request is expected to clear
// within the wait. Waiting beyond that only delays a refusal, and every
// waiter costs a goroutine that competes with the admitted requests for
// the CPU.
func (c *Controller) enqueue(scopes []*scope, failed *scope, charge func(*scope) int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := charge(failed)
	var d float64
	if failed.reqLimit > 0 {
		if failed.waitReqs >= failed.reqLimit {
			return false
		}
		d = max(d, c.hold*float64(failed.waitReqs+1)/float64(failed.reqLimit))
	}
	if failed.byteLimit > 0 {
		if failed.waitBytes+n > failed.byteLimit {
			return false
		}
		d = max(d, c.hold*float64(failed.waitBytes+n)/float64(failed.byteLimit))
	}
	if seconds(d) > c.lim.Wait {
		return false
	}
	for _, s := range scopes {
		s.waitReqs++
		s.waitBytes += charge(s)
	}
	c.pressed++
	return true
}

// refuse sheds a request of n bytes at s's bound limit: it counts the shed
// and returns the ResourceExhausted error with a retry delay sized from s's
// backlog. A non-nil t is a request that was never admitted: its key
// reference goes.
func (c *Controller) refuse(t *Ticket, s *scope, limit Limit, n int64) error {
	now := c.clk.Now()
	c.mu.Lock()
	decayLocked(s, now)
	// The backlog: what is in flight and waiting, plus what was shed
	// lately, which will be back.
	var d float64
	frac := 1.0
	if s == &c.all {
		frac = c.frac // the bounds as lowered
	}
	if s.reqLimit > 0 {
		d = c.hold * (float64(s.inReqs+s.waitReqs) + s.shedReqs + 1) / max(1, frac*float64(s.reqLimit))
	}
	if s.byteLimit > 0 {
		d = max(d, c.hold*(float64(s.inBytes+s.waitBytes+n)+s.shedBytes)/(frac*float64(s.byteLimit)))
	}
	s.shedReqs++
	s.shedBytes += float64(n)
	c.pressed++
	if t != nil {
		c.unrefLocked(t.k)
	}
	c.mu.Unlock()

	retry := min(max(seconds(d), MinRetry), MaxRetry)
	c.shed[limitIndex(limit)].Add(1)
	c.metrics.retry.Observe(retry.Seconds())
	return apierr.Exhausted(retry, "%s: %s; retry in %s", c.name, describe(limit, s), retry.Round(10*time.Millisecond))
}

// decayLocked fades s's memory of shed requests with a half-life of
// shedHalfLife.
func decayLocked(s *scope, now time.Time) {
	if !s.shedAt.IsZero() {
		if dt := now.Sub(s.shedAt); dt > 0 {
			f := math.Exp2(-dt.Seconds() / shedHalfLife.Seconds())
			s.shedReqs *= f
			s.shedBytes *= f
		}
	}
	s.shedAt = now
}

func describe(l Limit, s *scope) string {
	switch l {
	case LimitKeyRequests:
		return fmt.Sprintf("too many requests in flight for this API key (limit %d)", s.reqLimit)
	case LimitKeyBytes:
		return fmt.Sprintf("too many bytes in flight for this API key (limit %d)", s.byteLimit)
	case LimitRequests:
		return fmt.Sprintf("overloaded: %d requests in flight", s.reqLimit)
	default:
		return fmt.Sprintf("overloaded: %d bytes in flight", s.byteLimit)
	}
}

func limitIndex(l Limit) int {
	switch l {
	case LimitKeyRequests:
		return 0
	case LimitKeyBytes:
		return 1
	case LimitRequests:
		return 2
	default:
		return 3
	}
}

func seconds(s float64) time.Duration {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	if s > MaxRetry.Seconds() {
		return MaxRetry
	}
	return time.Duration(s * float64(time.Second))
}

// Stats is a snapshot of a controller.
type Stats struct {
	// Requests and Bytes are admitted and not yet released.
	Requests, Bytes int64
	// Waiting counts requests waiting for room.
	Waiting int64
	// Keys counts keys with requests in flight or waiting.
	Keys int
	// Admitted and Shed count requests since the start.
	Admitted, Shed uint64
	// Hold is the mean time a request is held.
	Hold time.Duration
	// Fraction is the share of the overall bounds in use (below 1 while
	// a Target lowers them).
	Fraction float64
}

// Stats returns the controller's current state.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	st := Stats{Requests: c.all.inReqs, Bytes: c.all.inBytes, Waiting: c.all.waitReqs, Keys: len(c.keys), Hold: seconds(c.hold), Fraction: c.frac}
	c.mu.Unlock()
	st.Admitted = c.admitted.Load()
	for i := range c.shed {
		st.Shed += c.shed[i].Load()
	}
	return st
}

// Shed returns the count of requests shed by limit l.
func (c *Controller) Shed(l Limit) uint64 { return c.shed[limitIndex(l)].Load() }

// Describe implements prometheus.Collector.
func (c *Controller) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector: cairn_admit_* with the label
// class set to the controller's name.
func (c *Controller) Collect(ch chan<- prometheus.Metric) { c.metrics.collect(c, ch) }
