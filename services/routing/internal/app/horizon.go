package app

import (
	"time"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// heldBackPoll is how often a timer loop held back by an ingestion backlog
// looks again when no commit wakes it (e.g. the consumer only learned that
// it is caught up).
const heldBackPoll = time.Second

// SetIngestionHorizon gives the service its ingestion consumers' event-time
// horizon, so that SLA timers are judged in event time while they have a
// backlog (see fireHorizon). Without it timers fire on the clock alone.
func (s *Service) SetIngestionHorizon(h stream.Horizon) {
	s.horizonMu.Lock()
	defer s.horizonMu.Unlock()
	s.horizon = h
}

// fireHorizon is the time up to which SLA timers may fire: the clock's now,
// except while the ingestion consumer has a backlog on some partition, when
// it is the latest event time applied from that partition (the lowest such;
// stream.Horizon). A touch still waiting in the log would otherwise be
// applied only after the deadline it met had been declared breached: after
// an outage, or whenever history is imported (a CRM backfill, the demo),
// every deadline in the backlog would breach on the wall clock. Judged in
// event time, a backlog gives the same SLA outcomes as live traffic. A
// partition whose upstream head is not known yet counts as behind, so a
// restart does not fire overdue timers before the consumer has asked what
// it missed.
func (s *Service) fireHorizon() time.Time {
	s.horizonMu.Lock()
	h := s.horizon
	s.horizonMu.Unlock()
	return stream.Limit(h, s.clk.Now())
}
