package deliver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// Kind says how a destination wants its messages.
type Kind int

const (
	// Webhook is a Standard Webhooks signed JSON POST.
	Webhook Kind = iota + 1
	// Slack is a Slack incoming-webhook JSON POST. Slack authenticates by the
	// secret URL, so these requests carry no signature headers.
	Slack
)

func (k Kind) String() string {
	switch k {
	case Webhook:
		return "webhook"
	case Slack:
		return "slack"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Destination is where messages go.
type Destination struct {
	ID   string
	Kind Kind
	URL  string
	// Secret is the Standard Webhooks secret, "whsec_<base64>"; required for
	// Webhook, ignored for Slack.
	Secret string
	// Concurrency bounds the requests in flight to this destination; 0 means 8.
	Concurrency int
	// Timeout bounds one attempt, response included; 0 means 10s.
	Timeout time.Duration
}

const (
	defaultConcurrency = 8
	maxConcurrency     = 1024
	defaultTimeout     = 10 * time.Second
	maxURLBytes        = 2048
)

// Validate reports why d cannot be used, or nil. The app calls it when a
// destination is applied, so that mistakes are refused with a reason rather
// than discovered as failed deliveries.
func (d Destination) Validate(p Policy) error {
	_, err := d.compile(p)
	return err
}

// config is a Destination checked and prepared once, so that attempts do
// not decode the secret again.
type config struct {
	Destination
	key []byte
}

func (d Destination) compile(p Policy) (*config, error) {
	if d.ID == "" {
		return nil, errors.New("destination id is empty")
	}
	if d.Kind != Webhook && d.Kind != Slack {
		return nil, fmt.Errorf("destination %q: kind must be webhook or slack", d.ID)
	}
	if err := CheckURL(d.URL, p); err != nil {
		return nil, fmt.Errorf("destination %q: url: %w", d.ID, err)
	}
	if d.Concurrency < 0 || d.Concurrency > maxConcurrency {
		return nil, fmt.Errorf("destination %q: concurrency must be between 0 and %d", d.ID, maxConcurrency)
	}
	if d.Timeout < 0 {
		return nil, fmt.Errorf("destination %q: timeout must not be negative", d.ID)
	}
	c := &config{Destination: d}
	if c.Concurrency == 0 {
		c.Concurrency = defaultConcurrency
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if d.Kind == Webhook {
		key, err := decodeSecret(d.Secret)
		if err != nil {
			return nil, fmt.Errorf("destination %q: secret: %w", d.ID, err)
		}
		c.key = key
	}
	return c, nil
}

func decodeSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, "whsec_")
	if s == "" {
		return nil, errors.New(`secret is empty; want "whsec_" followed by base64`)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New(`secret is not base64 after its "whsec_" prefix`)
	}
	if len(key) == 0 {
		return nil, errors.New("secret decodes to no bytes")
	}
	return key, nil
}

// Message is one durable outbox row to deliver.
type Message struct {
	// ID is the webhook-id, the same on every attempt so that receivers can
	// drop the duplicates that at-least-once delivery produces.
	ID string
	// Seq is the outbox sequence; it orders an account's messages to one
	// destination.
	Seq         uint64
	Destination string
	// Account is the ordering key.
	Account string
	Body    []byte
	// Created starts the horizon; zero means the time of Enqueue.
	Created time.Time
	// Attempts made so far.
	Attempts int
	// NextAt is the earliest time of the next attempt; zero means now.
	NextAt    time.Time
	LastError string
}

// State is where an attempt left its message.
type State int

const (
	// Delivered: a 2xx answer; the message is done.
	Delivered State = iota + 1
	// Retrying: the attempt failed in a way worth retrying at Message.NextAt.
	Retrying
	// Dead: the receiver refused the message or the horizon passed; no more
	// attempts.
	Dead
)

func (s State) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Retrying:
		return "retrying"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Outcome is what one attempt (or giving up without one) did to a message.
type Outcome struct {
	// Message has Attempts, NextAt and LastError updated.
	Message Message
	State   State
	// Status is the HTTP status of this attempt, 0 if there was none.
	Status  int
	Latency time.Duration
	At      time.Time
}

// Recorder makes outcomes durable. It must return only once they are, and
// must accept an outcome it has already recorded (after a failed call the
// same outcomes are offered again). It is called from one goroutine.
type Recorder func(ctx context.Context, outs []Outcome) error

// Policy says which network addresses deliveries may reach.
type Policy struct {
	// AllowPrivate permits loopback, private, link-local and the other
	// internal ranges (for development and tests).
	AllowPrivate bool
	// Allow permits these prefixes even when they are internal.
	Allow []netip.Prefix
}

// Options configure an Engine. Record is required; every other field has a
// default.
type Options struct {
	// Clock drives every wait (backoff, Retry-After, breaker cooldown,
	// horizon) and the webhook-timestamp. Per-attempt network timeouts are
	// real time.
	Clock  clock.Clock
	Record Recorder
	Policy Policy
	// Horizon is how long after Message.Created the engine keeps trying;
	// default 24h.
	Horizon time.Duration
	// BaseBackoff and MaxBackoff shape the exponential backoff with full
	// jitter; defaults 1s and 1h.
	BaseBackoff, MaxBackoff time.Duration
	// MaxResponseBytes is how much of a response body is read; default 64 KiB.
	MaxResponseBytes int64
	// BreakerFailures consecutive failures open a destination's breaker for
	// BreakerCooldown; defaults 5 and 30s.
	BreakerFailures int
	BreakerCooldown time.Duration
	// Rand returns numbers in [0,1) for jitter; nil means math/rand/v2.
	Rand func() float64
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registerer receives the metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// Transport replaces the safe transport (tests). With it, Policy is
	// enforced only by CheckURL and Validate, not at connect time.
	Transport http.RoundTripper
}

const (
	maxBatch      = 1024
	latencyWindow = 256
	// finalFlush bounds the last Record call made after Run's context ends.
	finalFlush = 5 * time.Second
)

// Engine delivers messages. See the package documentation for its
// guarantees.
type Engine struct {
	o      Options
	clock  clock.Clock
	log    *slog.Logger
	client *http.Client
	m      *metrics
	randMu sync.Mutex

	mu      sync.Mutex
	queues  map[string]*queue
	ids     map[string]struct{} // queued, in flight or awaiting record
	running context.Context     // nil until Run; attempts derive from it
	ran     bool
	wg      sync.WaitGroup // dispatchers and attempts

	omu      sync.Mutex
	outs     []pending // finished, not yet recorded
	outReady chan struct{}
}

// pending is an outcome with the item it came from, so that recording it
// can release the item's account.
type pending struct {
	out Outcome
	it  *item
}

// New checks o and returns an idle Engine; Run starts it.
func New(o Options) (*Engine, error) {
	if o.Record == nil {
		return nil, errors.New("deliver: Options.Record is required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Horizon <= 0 {
		o.Horizon = 24 * time.Hour
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Hour
	}
	o.MaxBackoff = max(o.MaxBackoff, o.BaseBackoff)
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 64 << 10
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range o.Policy.Allow {
		if !p.IsValid() {
			return nil, fmt.Errorf("deliver: Policy.Allow holds an invalid prefix %v", p)
		}
	}
	e := &Engine{
		o:        o,
		clock:    o.Clock,
		log:      o.Logger,
		queues:   map[string]*queue{},
		ids:      map[string]struct{}{},
		outReady: make(chan struct{}, 1),
	}
	rt := o.Transport
	if rt == nil {
		rt = newTransport(o.Policy)
	}
	e.client = &http.Client{
		Transport: rt,
		// A redirect is reported, never followed: the receiver must be
		// configured with its real URL, and a redirect cannot lead a
		// delivery (and its signed body) to a host nobody checked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if o.Registerer != nil {
		m, err := newMetrics(o.Registerer)
		if err != nil {
			return nil, fmt.Errorf("deliver: metrics: %w", err)
		}
		e.m = m
	}
	return e, nil
}

// SetDestinations replaces the set of destinations. Messages for a
// destination that is not in the set wait until it is; attempts in flight
// finish with the configuration they started with. An invalid destination
// is logged and treated as absent, so its messages wait for a fix rather
// than fail.
func (e *Engine) SetDestinations(ds []Destination) {
	cfgs := map[string]*config{}
	invalid := map[string]string{}
	for _, d := range ds {
		c, err := d.compile(e.o.Policy)
		if err != nil {
			e.log.Warn("delivery destination refused; its messages wait", "destination", d.ID, "err", err)
			delete(cfgs, d.ID)
			invalid[d.ID] = err.Error()
			continue
		}
		delete(invalid, d.ID)
		cfgs[d.ID] = c
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range cfgs {
		e.queueLocked(id)
	}
	for id := range invalid {
		e.queueLocked(id)
	}
	for id, q := range e.queues {
		q.configure(cfgs[id], invalid[id])
	}
}

// queueLocked returns the queue for a destination id, creating it (and its
// dispatcher, when running) on first use. e.mu must be held.
func (e *Engine) queueLocked(id string) *queue {
	q, ok := e.queues[id]
	if !ok {
		q = newQueue(e, id)
		e.queues[id] = q
		if e.running != nil && e.running.Err() == nil {
			e.wg.Add(1)
			go q.run(e.running)
		}
	}
	return q
}

// Enqueue adds messages without blocking on delivery. A message whose ID is
// already queued, in flight or awaiting its record is ignored, so the app
// may re-enqueue its whole outbox at any time. The id of a finished
// message is forgotten once its outcome is recorded: from then on the
// outbox row, no longer pending, is what keeps it from being sent again.
//
// The messages of one call are ordered by Seq before any is attempted, so
// the app should hand over an outbox scan in one call (or in Seq order): a
// message cannot wait for a predecessor the engine has not been given yet.
func (e *Engine) Enqueue(ms ...Message) {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	byQueue := map[*queue][]Message{}
	for _, m := range ms {
		if m.ID == "" {
			e.log.Warn("delivery message without id ignored", "destination", m.Destination, "seq", m.Seq)
			continue
		}
		if _, dup := e.ids[m.ID]; dup {
			continue
		}
		e.ids[m.ID] = struct{}{}
		if m.Created.IsZero() {
			m.Created = now
		}
		q := e.queueLocked(m.Destination)
		byQueue[q] = append(byQueue[q], m)
	}
	for q, ms := range byQueue {
		q.add(ms, now)
	}
}

// Run delivers until ctx ends, then returns nil. Attempts in flight are
// cancelled and their messages stay pending (the app re-enqueues them on
// restart); outcomes already known are offered to the Recorder once more,
// for up to 5s, so that a clean stop redelivers as little as possible.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.ran {
		e.mu.Unlock()
		return errors.New("deliver: Run called twice")
	}
	e.ran = true
	e.running = ctx
	for _, q := range e.queues {
		e.wg.Add(1)
		go q.run(ctx)
	}
	e.mu.Unlock()

	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		e.recordLoop(ctx)
	}()
	<-ctx.Done()
	e.mu.Lock() // no dispatcher starts after this: queueLocked sees ctx.Err
	e.mu.Unlock()
	e.wg.Wait()
	<-recDone

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlush)
	defer cancel()
	for {
		batch := e.takeOutcomes()
		if len(batch) == 0 {
			break
		}
		if err := e.o.Record(fctx, outcomes(batch)); err != nil {
			e.log.Warn("delivery outcomes not recorded at shutdown; those messages will be delivered again after restart",
				"outcomes", len(batch), "err", err)
			break
		}
		e.applyRecorded(batch)
	}
	return nil
}

func (e *Engine) pushOutcome(p pending) {
	e.omu.Lock()
	e.outs = append(e.outs, p)
	e.omu.Unlock()
	select {
	case e.outReady <- struct{}{}:
	default:
	}
}

func (e *Engine) takeOutcomes() []pending {
	e.omu.Lock()
	defer e.omu.Unlock()
	n := min(len(e.outs), maxBatch)
	if n == 0 {
		return nil
	}
	batch := slices.Clone(e.outs[:n])
	e.outs = append(e.outs[:0], e.outs[n:]...)
	return batch
}

// requeueOutcomes puts an unrecorded batch back in front, for the final
// flush.
func (e *Engine) requeueOutcomes(batch []pending) {
	e.omu.Lock()
	e.outs = append(batch, e.outs...)
	e.omu.Unlock()
}

func outcomes(batch []pending) []Outcome {
	outs := make([]Outcome, len(batch))
	for i, p := range batch {
		outs[i] = p.out
	}
	return outs
}

// recordLoop is the single caller of Record. Whatever finished while the
// previous call ran goes into the next, so the app commits (and fsyncs)
// once per batch rather than once per delivery.
func (e *Engine) recordLoop(ctx context.Context) {
	const firstRetry, maxRetry = 100 * time.Millisecond, 10 * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.outReady:
		}
		for {
			batch := e.takeOutcomes()
			if len(batch) == 0 {
				break
			}
			outs := outcomes(batch)
			delay := firstRetry
			for {
				err := e.o.Record(ctx, outs)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					e.requeueOutcomes(batch)
					return
				}
				// Nothing is released until it is recorded: the accounts
				// stay blocked rather than move on past an outcome that a
				// crash could lose.
				e.log.Error("recording delivery outcomes failed; retrying", "outcomes", len(outs), "err", err, "retry_in", delay)
				select {
				case <-ctx.Done():
					e.requeueOutcomes(batch)
					return
				case <-e.clock.After(delay):
				}
				delay = min(2*delay, maxRetry)
			}
			e.applyRecorded(batch)
		}
	}
}

// applyRecorded releases the accounts of recorded outcomes and forgets the
// ids of finished messages.
func (e *Engine) applyRecorded(batch []pending) {
	now := e.clock.Now()
	byQueue := map[*queue][]pending{}
	for _, p := range batch {
		byQueue[p.it.q] = append(byQueue[p.it.q], p)
	}
	for q, ps := range byQueue {
		q.recorded(ps, now)
	}
	e.mu.Lock()
	for _, p := range batch {
		if p.out.State != Retrying {
			delete(e.ids, p.out.Message.ID)
		}
	}
	e.mu.Unlock()
}

func (e *Engine) random() float64 {
	e.randMu.Lock()
	r := e.o.Rand()
	e.randMu.Unlock()
	if !(r >= 0) || r >= 1 { // also catches NaN
		r = 0.5
	}
	return r
}

// backoff is the delay after the attempts-th failed attempt: uniform in
// [0, min(MaxBackoff, BaseBackoff·2^(attempts-1))). Full jitter spreads
// the retries of messages that failed together (a receiver outage) so they
// do not return together.
func (e *Engine) backoff(attempts int) time.Duration {
	ceil := e.o.MaxBackoff
	if n := attempts - 1; n >= 0 && n < 62 {
		if c := e.o.BaseBackoff << n; c>>n == e.o.BaseBackoff && c < ceil {
			ceil = c
		}
	}
	return time.Duration(e.random() * float64(ceil))
}

// DestinationStats describe one destination's queue.
type DestinationStats struct {
	Destination string
	// Configured is false for a destination that messages name but the
	// current set lacks (or refused); its messages wait.
	Configured     bool
	Queued         int // held, not in flight (waiting, or awaiting record)
	InFlight       int
	Delivered      uint64
	FailedAttempts uint64
	Dead           uint64
	Breaker        string // "closed", "open" or "half-open"
	LastError      string
	LastStatus     int
	LastAttempt    time.Time
	// P50 and P99 are over the most recent 256 attempts.
	P50, P99 time.Duration
}

// Stats reports every destination, sorted by id.
func (e *Engine) Stats() []DestinationStats {
	now := e.clock.Now()
	e.mu.Lock()
	qs := make([]*queue, 0, len(e.queues))
	for _, q := range e.queues {
		qs = append(qs, q)
	}
	e.mu.Unlock()
	out := make([]DestinationStats, 0, len(qs))
	for _, q := range qs {
		out = append(out, q.stats(now))
	}
	slices.SortFunc(out, func(a, b DestinationStats) int { return strings.Compare(a.Destination, b.Destination) })
	return out
}
