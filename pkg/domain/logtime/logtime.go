// Package logtime gives the event time of the records on Cairn's logs: the
// instant the record is about, as opposed to when it was appended. A
// consumer that reads two logs orders them by it (stream.ConsumerOptions
// EventTime and After).
package logtime

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// Ingestion is an event's time (account.EventTime); zero for a tombstone.
func Ingestion(r *ingestionv1.LogRecord) time.Time {
	if e := r.GetEvent(); e != nil {
		return account.EventTime(e)
	}
	return time.Time{}
}

// Stages is a transition's time or a signal's (Signal); zero for a
// tombstone.
func Stages(r *stagesv1.LogRecord) time.Time {
	switch {
	case r.GetTransition() != nil:
		return ts(r.GetTransition().GetAt())
	case r.GetSignal() != nil:
		return Signal(r.GetSignal())
	}
	return time.Time{}
}

// Health is a score change's time or a signal's (Signal); zero for a
// tombstone.
func Health(r *healthv1.LogRecord) time.Time {
	switch {
	case r.GetScoreChange() != nil:
		return ts(r.GetScoreChange().GetAt())
	case r.GetSignal() != nil:
		return Signal(r.GetSignal())
	}
	return time.Time{}
}

// Routing is an assignment's time (its creation) or an SLA event's; zero
// for a tombstone.
func Routing(r *routingv1.LogRecord) time.Time {
	switch {
	case r.GetAssignment() != nil:
		return ts(r.GetAssignment().GetCreatedAt())
	case r.GetSlaEvent() != nil:
		return ts(r.GetSlaEvent().GetAt())
	}
	return time.Time{}
}

// Signal is when a signal last changed state: closed_at for a closed
// signal that has one, else opened_at.
func Signal(s *commonv1.Signal) time.Time {
	if s.GetState() != commonv1.SignalState_SIGNAL_STATE_OPEN && s.GetClosedAt() != nil {
		return ts(s.GetClosedAt())
	}
	return ts(s.GetOpenedAt())
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil || !t.IsValid() {
		return time.Time{}
	}
	return t.AsTime()
}
