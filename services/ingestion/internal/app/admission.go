package app

import (
	"errors"
	"fmt"
	"strings"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
)

// Admission bounds the calls ingestion handles at once, per API key and
// overall, in four classes. A call is counted when its stream opens,
// before its message is read, and for as long as it runs (a stream for its
// whole life); over a bound it is refused at once with ResourceExhausted
// and a RetryInfo sized from the backlog (pkg/admit.Tap). The bytes of the
// batches admitted are bounded separately (-max-inflight-bytes).
type Admission struct {
	// Writes bounds Ingest calls.
	Writes, WritesPerKey int64
	// Streams bounds IngestStream streams (their batches are bounded by
	// bytes, with the Ingest calls').
	Streams, StreamsPerKey int64
	// Readers bounds the other calls: timelines, log info, deletions.
	Readers, ReadersPerKey int64
	// Subscribers bounds Subscribe streams (the consumers of the log).
	Subscribers, SubscribersPerKey int64
	// Wait is the longest a batch waits for room in the byte budget.
	Wait time.Duration
	// Target is the mean time an Ingest call or a batch may take while
	// others are shed or wait, above which their bounds are lowered
	// (pkg/admit Limits.Target; 0: fixed bounds).
	Target time.Duration
}

func (a *Admission) register(f *pkgserver.Flags) {
	i64 := f.Int64Var
	i64(&a.Writes, "max-inflight-requests", 128, "Ingest calls in process before callers get ResourceExhausted")
	i64(&a.WritesPerKey, "max-inflight-requests-per-key", 64, "Ingest calls in process for one API key")
	i64(&a.Streams, "max-ingest-streams", 128, "IngestStream streams open before new ones get ResourceExhausted")
	i64(&a.StreamsPerKey, "max-ingest-streams-per-key", 64, "IngestStream streams open for one API key")
	i64(&a.Readers, "max-readers", 128, "other calls (timelines, log info, deletions) in process before callers get ResourceExhausted")
	i64(&a.ReadersPerKey, "max-readers-per-key", 64, "other calls in process for one API key")
	i64(&a.Subscribers, "max-subscribers", 1024, "Subscribe streams open before new ones get ResourceExhausted")
	i64(&a.SubscribersPerKey, "max-subscribers-per-key", 512, "Subscribe streams open for one (service) key")
	f.DurationVar(&a.Wait, "admit-wait", 100*time.Millisecond, "longest a batch waits for room in -max-inflight-bytes before it is refused")
	f.DurationVar(&a.Target, "admit-target", 100*time.Millisecond, "mean time an Ingest call or batch may take while others are refused, above which their bounds are lowered (0: fixed)")
}

// validate names the first bad bound by its flag.
func (a *Admission) validate() error {
	for _, b := range []struct {
		flag           string
		total, per     int64
		perFlag, class string
	}{
		{"max-inflight-requests", a.Writes, a.WritesPerKey, "max-inflight-requests-per-key", "writes"},
		{"max-ingest-streams", a.Streams, a.StreamsPerKey, "max-ingest-streams-per-key", "streams"},
		{"max-readers", a.Readers, a.ReadersPerKey, "max-readers-per-key", "readers"},
		{"max-subscribers", a.Subscribers, a.SubscribersPerKey, "max-subscribers-per-key", "subscribers"},
	} {
		if b.total <= 0 {
			return fmt.Errorf("-%s: %d is not positive", b.flag, b.total)
		}
		if b.per <= 0 || b.per > b.total {
			return fmt.Errorf("-%s: %d must be positive and at most -%s %d", b.perFlag, b.per, b.flag, b.total)
		}
	}
	if a.Wait < 0 {
		return errors.New("-admit-wait: must not be negative")
	}
	if a.Target < 0 {
		return errors.New("-admit-target: must not be negative")
	}
	return nil
}

// calls are the controllers of the four classes of calls.
type calls struct {
	writes, streams, readers, subscribers *admit.Controller
}

func newCalls(a Admission, clk clock.Clock) calls {
	return calls{
		// An Ingest call's time is what its caller waits: the target
		// bounds it. Streams are held for long on purpose.
		writes:      admit.New("ingestion writes", admit.Limits{Requests: a.Writes, KeyRequests: a.WritesPerKey, Target: a.Target}, clk),
		streams:     admit.New("ingestion streams", admit.Limits{Requests: a.Streams, KeyRequests: a.StreamsPerKey}, clk),
		readers:     admit.New("ingestion reads", admit.Limits{Requests: a.Readers, KeyRequests: a.ReadersPerKey}, clk),
		subscribers: admit.New("ingestion subscribers", admit.Limits{Requests: a.Subscribers, KeyRequests: a.SubscribersPerKey}, clk),
	}
}

// tap admits every IngestionService call by its class; health checks and
// reflection are not bounded. Callers are told apart by API key.
func (c calls) tap(keys auth.Authenticator) admit.Tap {
	return admit.Tap{Class: c.class, Key: admit.BearerKey(keys)}
}

func (c calls) class(method string) *admit.Controller {
	switch method {
	case ingestionv1.IngestionService_Ingest_FullMethodName:
		return c.writes
	case ingestionv1.IngestionService_IngestStream_FullMethodName:
		return c.streams
	case ingestionv1.IngestionService_Subscribe_FullMethodName:
		return c.subscribers
	}
	if strings.HasPrefix(method, "/"+ingestionv1.IngestionService_ServiceDesc.ServiceName+"/") {
		return c.readers
	}
	return nil
}

func (c calls) all() []*admit.Controller {
	return []*admit.Controller{c.writes, c.streams, c.readers, c.subscribers}
}
