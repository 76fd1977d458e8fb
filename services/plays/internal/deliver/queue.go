package deliver

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// queue holds one destination's messages and runs its dispatcher. Each
// destination has its own lock, dispatcher and attempt goroutines, and no
// lock is held during HTTP, so a slow destination cannot delay another.
type queue struct {
	e    *Engine
	id   string
	wake chan struct{}
	// sync lets tests wait for one full dispatch pass.
	sync chan chan struct{}

	mu       sync.Mutex
	cfg      *config // nil: unknown or refused; messages wait
	invalid  string  // why the configured destination was refused
	accounts map[string]*account
	// ready holds accounts whose head may be attempted now, in the order
	// they became ready; timed holds those whose head waits for NextAt.
	// Entries go stale when their account changes (gen) and are skipped.
	ready    []slot
	timed    slotHeap
	held     int // messages held: waiting, in flight or awaiting record
	inflight int
	br       breaker
	sweepAt  time.Time

	delivered, failed, dead uint64
	lastErr                 string
	lastStatus              int
	lastAt                  time.Time
	lat                     [latencyWindow]time.Duration
	latN                    int

	passes atomic.Uint64

	// metric children, resolved once; nil without a Registerer
	mDelivered, mRetrying, mDead, mDeadTotal prometheus.Counter
	mSeconds                                 prometheus.Observer
	mQueue                                   prometheus.Gauge
}

// account is one ordering key's messages to this destination, by Seq. While
// busy, its head is in flight or its outcome awaits record, and nothing
// else of the account is attempted.
type account struct {
	key  string
	msgs []*item
	busy bool
	gen  uint64
}

type item struct {
	m        Message
	q        *queue
	a        *account
	deadline time.Time
}

type slot struct {
	a   *account
	gen uint64
	at  time.Time
}

func (s slot) valid() bool { return s.gen == s.a.gen }

type slotHeap []slot

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h slotHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slotHeap) Push(x any)        { *h = append(*h, x.(slot)) }
func (h *slotHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

func newQueue(e *Engine, id string) *queue {
	q := &queue{
		e:        e,
		id:       id,
		wake:     make(chan struct{}, 1),
		sync:     make(chan chan struct{}),
		accounts: map[string]*account{},
		br:       breaker{threshold: e.o.BreakerFailures, cooldown: e.o.BreakerCooldown},
	}
	if m := e.m; m != nil {
		q.mDelivered = m.deliveries.WithLabelValues(id, "delivered")
		q.mRetrying = m.deliveries.WithLabelValues(id, "retrying")
		q.mDead = m.deliveries.WithLabelValues(id, "dead")
		q.mDeadTotal = m.dead.WithLabelValues(id)
		q.mSeconds = m.seconds.WithLabelValues(id)
		q.mQueue = m.queue.WithLabelValues(id)
	}
	return q
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) configure(c *config, invalid string) {
	q.mu.Lock()
	q.cfg, q.invalid = c, invalid
	q.mu.Unlock()
	q.signal()
}

// add files messages under one lock, so that none of them is attempted
// before all are in Seq order.
func (q *queue) add(ms []Message, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var heads []*account // in arrival order, for fairness
	isHead := map[*account]bool{}
	for _, m := range ms {
		a := q.accounts[m.Account]
		if a == nil {
			a = &account{key: m.Account}
			q.accounts[m.Account] = a
		}
		it := &item{m: m, q: q, a: a, deadline: m.Created.Add(q.e.o.Horizon)}
		// After any equal Seq (among equals, arrival order); usually at
		// the end.
		i := len(a.msgs)
		if i > 0 && a.msgs[i-1].m.Seq > m.Seq {
			i = sort.Search(len(a.msgs), func(j int) bool { return a.msgs[j].m.Seq > m.Seq })
		}
		a.msgs = slices.Insert(a.msgs, i, it)
		q.held++
		if i == 0 && !a.busy && !isHead[a] {
			isHead[a] = true
			heads = append(heads, a)
		}
	}
	for _, a := range heads {
		q.placeLocked(a, now)
	}
	q.setGaugeLocked()
	if len(heads) > 0 {
		q.signal()
	}
}

func (q *queue) setGaugeLocked() {
	if q.mQueue != nil {
		q.mQueue.Set(float64(q.held))
	}
}

// placeLocked files an idle account under ready or timed by its head, and
// forgets an empty one.
func (q *queue) placeLocked(a *account, now time.Time) {
	a.gen++
	if a.busy {
		return
	}
	if len(a.msgs) == 0 {
		delete(q.accounts, a.key)
		return
	}
	h := a.msgs[0]
	if h.m.NextAt.After(now) {
		heap.Push(&q.timed, slot{a: a, gen: a.gen, at: h.m.NextAt})
		return
	}
	q.ready = append(q.ready, slot{a: a, gen: a.gen})
}

// run is the destination's dispatcher: it starts attempts while capacity
// and the breaker allow, and sleeps on the clock until the next message is
// due.
func (q *queue) run(ctx context.Context) {
	defer q.e.wg.Done()
	clk := q.e.clock
	var timerAt time.Time
	var timer <-chan time.Time
	var synced []chan struct{}
	for {
		now := clk.Now()
		q.mu.Lock()
		next := q.dispatchLocked(ctx, now)
		q.mu.Unlock()
		q.passes.Add(1)
		for _, c := range synced {
			close(c)
		}
		synced = synced[:0]

		switch {
		case next.IsZero():
			timerAt, timer = time.Time{}, nil
		case !next.Equal(timerAt):
			timerAt, timer = next, clk.After(next.Sub(now))
			// A clock moved past next while the timer was being set would
			// leave it waiting for a time already gone (Manual clocks).
			if !clk.Now().Before(next) {
				timerAt, timer = time.Time{}, nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case c := <-q.sync:
			synced = append(synced, c)
		case <-timer:
			timerAt, timer = time.Time{}, nil
		}
	}
}

// dispatchLocked starts what may start now and returns when to look again
// (zero: only when woken).
func (q *queue) dispatchLocked(ctx context.Context, now time.Time) time.Time {
	for len(q.timed) > 0 && !q.timed[0].at.After(now) {
		if s := heap.Pop(&q.timed).(slot); s.valid() {
			q.ready = append(q.ready, s)
		}
	}
	for len(q.timed) > 0 && !q.timed[0].valid() {
		heap.Pop(&q.timed)
	}
	var next time.Time
	if len(q.timed) > 0 {
		next = q.timed[0].at
	}
	cfg := q.cfg
	if cfg == nil {
		return time.Time{} // configure wakes us
	}

	free, blocked := q.br.allow(now, cfg.Concurrency-q.inflight)
	if blocked {
		if q.br.state == breakerOpen && (next.IsZero() || q.br.until.Before(next)) {
			next = q.br.until
		}
		// While the breaker holds everything back, expired messages are
		// still given up, so that a long outage does not leave them queued
		// until one probe per cooldown reaches each.
		if !now.Before(q.sweepAt) {
			q.sweepAt = now.Add(q.br.cooldown)
			keep := q.ready[:0]
			for _, s := range q.ready {
				if !s.valid() {
					continue
				}
				if h := s.a.msgs[0]; now.After(h.deadline) {
					q.expireLocked(s.a, h, now)
					continue
				}
				keep = append(keep, s)
			}
			clear(q.ready[len(keep):])
			q.ready = keep
		}
		return next
	}

	for len(q.ready) > 0 {
		s := q.ready[0]
		if !s.valid() {
			q.ready = q.ready[1:]
			continue
		}
		h := s.a.msgs[0]
		// A message whose horizon passed while it waited (a restart, an
		// open breaker) is given up without another attempt; one whose
		// final attempt was scheduled at the horizon still gets it.
		if now.After(h.deadline) && h.m.NextAt.Before(h.deadline) {
			q.ready = q.ready[1:]
			q.expireLocked(s.a, h, now)
			continue
		}
		if free <= 0 {
			break
		}
		q.ready = q.ready[1:]
		free--
		s.a.busy = true
		s.a.gen++
		q.inflight++
		gen := q.br.launch()
		msg := h.m
		q.e.wg.Add(1)
		go q.attempt(ctx, h, msg, cfg, gen)
	}
	if len(q.ready) == 0 {
		q.ready = nil // let the backing array go after a burst
	}
	return next
}

// expireLocked gives a message up without an attempt.
func (q *queue) expireLocked(a *account, it *item, now time.Time) {
	a.busy = true
	a.gen++
	m := it.m
	last := m.LastError
	if last == "" {
		last = "no attempt made"
	}
	m.LastError = fmt.Sprintf("horizon of %s passed; last error: %s", q.e.o.Horizon, last)
	m.NextAt = time.Time{}
	it.m = m
	q.dead++
	if q.mDead != nil {
		q.mDead.Inc()
		q.mDeadTotal.Inc()
	}
	q.e.pushOutcome(pending{out: Outcome{Message: m, State: Dead, At: now}, it: it})
}

// attempt makes one HTTP attempt and files its outcome.
func (q *queue) attempt(ctx context.Context, it *item, msg Message, cfg *config, gen uint64) {
	defer q.e.wg.Done()
	at := q.e.clock.Now()
	start := time.Now()
	r := q.e.send(ctx, cfg, msg, at)
	lat := time.Since(start)
	if r.class != resultOK && ctx.Err() != nil {
		// Cancelled by shutdown: not the receiver's failure. The message
		// stays pending in the outbox and is attempted again after restart.
		q.mu.Lock()
		q.inflight--
		it.a.busy = false
		q.placeLocked(it.a, at)
		q.mu.Unlock()
		return
	}
	q.finish(it, r, lat, gen)
}

func (q *queue) finish(it *item, r result, lat time.Duration, gen uint64) {
	o := q.e.o
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.e.clock.Now()
	q.inflight--
	m := it.m
	m.Attempts++
	out := Outcome{Status: r.status, Latency: lat, At: now}
	switch r.class {
	case resultOK:
		out.State = Delivered
		m.LastError, m.NextAt = "", time.Time{}
	case resultDead:
		out.State = Dead
		m.LastError, m.NextAt = r.err, time.Time{}
	default:
		m.LastError = r.err
		if !now.Before(it.deadline) {
			out.State = Dead
			m.LastError = fmt.Sprintf("horizon of %s passed; last error: %s", o.Horizon, r.err)
			m.NextAt = time.Time{}
			break
		}
		out.State = Retrying
		delay := q.e.backoff(m.Attempts)
		if r.hasRetryAfter {
			delay = min(r.retryAfter, o.MaxBackoff)
		}
		// The last attempt is made at the horizon rather than skipped.
		m.NextAt = now.Add(delay)
		if m.NextAt.After(it.deadline) {
			m.NextAt = it.deadline
		}
	}
	it.m = m
	out.Message = m
	q.br.record(gen, r.class != resultRetry, now)

	q.lastStatus, q.lastAt = r.status, now
	if r.class != resultOK {
		q.lastErr = r.err
	}
	q.lat[q.latN%latencyWindow] = lat
	q.latN++
	switch out.State {
	case Delivered:
		q.delivered++
	case Retrying:
		q.failed++
	case Dead:
		q.dead++
		if r.class == resultRetry {
			q.failed++
		}
	}
	if q.mSeconds != nil {
		q.mSeconds.Observe(lat.Seconds())
		switch out.State {
		case Delivered:
			q.mDelivered.Inc()
		case Retrying:
			q.mRetrying.Inc()
		case Dead:
			q.mDead.Inc()
			q.mDeadTotal.Inc()
		}
	}
	q.e.pushOutcome(pending{out: out, it: it})
	q.signal() // capacity freed
}

// recorded releases accounts whose outcomes are now durable: the next
// message of an account may go only after its predecessor's outcome
// cannot be lost.
func (q *queue) recorded(ps []pending, now time.Time) {
	q.mu.Lock()
	for _, p := range ps {
		it, a := p.it, p.it.a
		a.busy = false
		if p.out.State != Retrying {
			if i := slices.Index(a.msgs, it); i >= 0 {
				a.msgs = slices.Delete(a.msgs, i, i+1)
				q.held--
			}
		}
		q.placeLocked(a, now)
	}
	q.setGaugeLocked()
	q.mu.Unlock()
	q.signal()
}

func (q *queue) stats(now time.Time) DestinationStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := DestinationStats{
		Destination:    q.id,
		Configured:     q.cfg != nil,
		Queued:         q.held - q.inflight,
		InFlight:       q.inflight,
		Delivered:      q.delivered,
		FailedAttempts: q.failed,
		Dead:           q.dead,
		Breaker:        q.br.describe(now),
		LastError:      q.lastErr,
		LastStatus:     q.lastStatus,
		LastAttempt:    q.lastAt,
	}
	if q.cfg == nil && q.invalid != "" {
		s.LastError = "destination refused: " + q.invalid
	}
	if n := min(q.latN, latencyWindow); n > 0 {
		l := slices.Clone(q.lat[:n])
		slices.Sort(l)
		s.P50 = l[(n-1)*50/100]
		s.P99 = l[(n-1)*99/100]
	}
	return s
}

// settle waits for one full dispatch pass that starts after the call; for
// tests. It returns false if the dispatcher is not running.
func (q *queue) settle(ctx context.Context) bool {
	c := make(chan struct{})
	select {
	case q.sync <- c:
	case <-ctx.Done():
		return false
	}
	select {
	case <-c:
		return true
	case <-ctx.Done():
		return false
	}
}
