package stream

import "sync"

// Serving records how far each Serve call in progress has sent, so that a
// log can tell how far behind its furthest subscriber is (SubscriberLag).
// Both backends, the bbolt Log and jetlog's, serve this way.
type Serving struct {
	mu    sync.Mutex
	calls map[*ServeCall]struct{}
}

// ServeCall is one Serve call's progress.
type ServeCall struct {
	s    *Serving
	p    uint32
	sent uint64 // last offset sent; guarded by s.mu
}

// Track registers a Serve call of partition p that has sent up to offset
// sent (0: nothing). Done must be called when the call ends.
func (s *Serving) Track(p uint32, sent uint64) *ServeCall {
	c := &ServeCall{s: s, p: p, sent: sent}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[*ServeCall]struct{}{}
	}
	s.calls[c] = struct{}{}
	return c
}

// Sent records that the call has handed every record up to off to its
// subscriber; progress never goes back.
func (c *ServeCall) Sent(off uint64) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.sent = max(c.sent, off)
}

// Done ends the call.
func (c *ServeCall) Done() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	delete(c.s.calls, c)
}

// Lag returns the largest head - sent over the calls in progress, with
// head giving each partition's head (it must not call back into s); 0
// when there are none.
func (s *Serving) Lag(head func(p uint32) uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lag uint64
	for c := range s.calls {
		if h := head(c.p); h > c.sent && h-c.sent > lag {
			lag = h - c.sent
		}
	}
	return lag
}
