package stream

import (
	"sync"
	"time"
)

// Horizon is how far in event time a consumer has applied its upstream. A
// service that reads two logs derived from the same events (routing reads
// ingestion's events and health's signals about them) must not apply a
// derived record before the events it was derived from: a renewal signal
// applied ahead of the calls that answered it, or a stage change applied
// ahead of the events that preceded it, would make the service's state
// depend on how fast each consumer happened to run. ConsumerOptions.After
// holds the derived log's records back until the events' consumer has
// applied its upstream up to their time.
type Horizon interface {
	// Horizon returns the event time up to which the upstream is applied
	// and true, or false when the consumer is caught up (no bound). While
	// some partition is behind, the time is the lowest watermark (latest
	// event time applied) among the partitions behind; a partition whose
	// head is not known yet is behind with no watermark.
	Horizon() (time.Time, bool)
	// Changed returns a channel closed at the next change of the horizon
	// (take it before calling Horizon, so no change is missed).
	Changed() <-chan struct{}
}

// broadcast wakes every waiter at once; Consumers share one.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// Horizon implements Horizon over c's partitions (ConsumerOptions.EventTime
// gives the watermarks; without it a partition behind has none).
func (c *Consumer[T]) Horizon() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.horizonLocked()
}

func (c *Consumer[T]) horizonLocked() (time.Time, bool) {
	var (
		low     time.Time
		bounded bool
	)
	for _, p := range c.opts.Partitions {
		if c.known[p] && c.cursors[p] >= c.heads[p] {
			continue
		}
		if m := c.marks[p]; !bounded || m.Before(low) {
			low = m
		}
		bounded = true
	}
	return low, bounded
}

// Changed implements Horizon.
func (c *Consumer[T]) Changed() <-chan struct{} { return c.changed.wait() }

// Horizon implements Horizon over every replica's consumer: the lowest
// bound among them.
func (cs Consumers[T]) Horizon() (time.Time, bool) {
	var (
		low     time.Time
		bounded bool
	)
	for _, c := range cs {
		if t, ok := c.Horizon(); ok && (!bounded || t.Before(low)) {
			low, bounded = t, true
		}
	}
	return low, bounded
}

// Changed implements Horizon; NewConsumers gives its consumers one shared
// notifier.
func (cs Consumers[T]) Changed() <-chan struct{} {
	if len(cs) == 0 {
		return nil
	}
	return cs[0].Changed()
}

// Limit is the horizon as an instant for things that fire on a clock (SLA
// timers): now, or the horizon when it is earlier. A nil h is no bound.
func Limit(h Horizon, now time.Time) time.Time {
	if h == nil {
		return now
	}
	if t, ok := h.Horizon(); ok && t.Before(now) {
		return t
	}
	return now
}
