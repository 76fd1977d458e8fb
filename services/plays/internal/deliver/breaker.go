package deliver

import "time"

// breaker stops attempts to a destination that keeps failing, so a dead
// receiver costs one probe per cooldown instead of a connection attempt per
// queued message, and the messages keep their attempt budget for when it
// is back. It is written here rather than taken from a library because it
// must run on the injected clock and be driven by the dispatcher under the
// queue's lock.
type breaker struct {
	threshold int
	cooldown  time.Duration

	state    breakerState
	failures int       // consecutive, while closed
	until    time.Time // end of the open period
	probing  bool      // the half-open probe is in flight
	// gen changes with every state change; a result from an attempt
	// started under another generation says nothing about the current
	// state and is ignored.
	gen uint64
}

type breakerState int

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
)

// allow returns how many attempts may start now given free capacity, and
// whether the breaker (rather than capacity) holds attempts back.
func (b *breaker) allow(now time.Time, free int) (int, bool) {
	if b.state == breakerOpen {
		if now.Before(b.until) {
			return 0, true
		}
		b.state, b.probing = breakerHalfOpen, false
		b.gen++
	}
	if b.state == breakerHalfOpen {
		if b.probing {
			return 0, true
		}
		return min(free, 1), false
	}
	return max(free, 0), false
}

// launch notes that an attempt starts and returns its generation.
func (b *breaker) launch() uint64 {
	if b.state == breakerHalfOpen {
		b.probing = true
	}
	return b.gen
}

// record takes an attempt's result; ok means the receiver answered in a
// way that is not worth retrying (2xx, or a refusal).
func (b *breaker) record(gen uint64, ok bool, now time.Time) {
	if gen != b.gen {
		return
	}
	switch b.state {
	case breakerClosed:
		if ok {
			b.failures = 0
			return
		}
		b.failures++
		if b.failures >= b.threshold {
			b.open(now)
		}
	case breakerHalfOpen:
		if ok {
			b.state, b.failures, b.probing = breakerClosed, 0, false
			b.gen++
			return
		}
		b.open(now)
	}
}

func (b *breaker) open(now time.Time) {
	b.state, b.until, b.probing = breakerOpen, now.Add(b.cooldown), false
	b.gen++
}

func (b *breaker) describe(now time.Time) string {
	switch {
	case b.state == breakerOpen && now.Before(b.until):
		return "open"
	case b.state == breakerOpen, b.state == breakerHalfOpen:
		return "half-open"
	}
	return "closed"
}
