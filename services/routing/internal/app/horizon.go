package app

import (
	"time"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// heldBackPoll is how often a timer loop held back by an ingestion backlog
// looks again when no commit wakes it (e.g. the consumer only learned that
// it is caught up).
const heldBackPoll = time.Second

// SetIngestionProgress gives the service its ingestion consumer's position,
// so that SLA timers are judged in event time while that consumer has a
// backlog (see fireHorizon). Without it timers fire on the clock alone.
// Each Lag's Partition is the source key ApplyIngestion was given for it.
func (s *Service) SetIngestionProgress(progress func() []stream.Lag) {
	s.progressMu.Lock()
	defer s.progressMu.Unlock()
	s.progress = progress
}

// advanceWatermark records that source's records up to event time t are
// applied.
func (s *Service) advanceWatermark(source uint32, t time.Time) {
	s.progressMu.Lock()
	defer s.progressMu.Unlock()
	if t.After(s.watermark[source]) {
		s.watermark[source] = t
	}
}

// fireHorizon is the time up to which SLA timers may fire: the clock's now,
// except while the ingestion consumer has a backlog on some partition, when
// it is the latest event time applied from that partition (the lowest such).
// A touch still waiting in the log would otherwise be applied only after the
// deadline it met had been declared breached: after an outage, or whenever
// history is imported (a CRM backfill, the demo), every deadline in the
// backlog would breach on the wall clock. Judged in event time, a backlog
// gives the same SLA outcomes as live traffic. A partition whose upstream
// head is not known yet counts as behind, so a restart does not fire
// overdue timers before the consumer has asked what it missed.
func (s *Service) fireHorizon() time.Time {
	now := s.clk.Now()
	s.progressMu.Lock()
	defer s.progressMu.Unlock()
	if s.progress == nil {
		return now
	}
	for _, l := range s.progress() {
		if l.CaughtUp() {
			continue
		}
		if wm := s.watermark[l.Partition]; wm.Before(now) {
			now = wm
		}
	}
	return now
}
