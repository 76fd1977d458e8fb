package server

import (
	"context"
	"strings"
	"sync"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Status answers the GetStatus RPC of stages, health and routing: the
// Backlog of the consumers lag reports (nil: none). The backlog is the
// service's, over every workspace, and shows no workspace's data (offsets
// only), but the caller must still be allowed on the workspace its
// request names, as for every call (auth.Workspace).
func Status(ctx context.Context, workspace string, lag func() []stream.Lag) (*commonv1.Backlog, error) {
	if _, err := auth.Workspace(ctx, workspace); err != nil {
		return nil, err
	}
	var lags []stream.Lag
	if lag != nil {
		lags = lag()
	}
	return Backlog(lags), nil
}

// Lags collects the lag of a service's consumers for its GetStatus RPC,
// where the API is registered before the consumers are built (routing):
// the server takes Lags.Lag, and the wiring adds each consumer
// (stream.Consumer.Lag, stream.Consumers.Lag) as it builds it. The zero
// value is ready; it is safe for concurrent use.
type Lags struct {
	mu      sync.Mutex
	sources []func() []stream.Lag
}

// Add reports the lag of one consumer, or of the consumers of one upstream.
func (l *Lags) Add(lag func() []stream.Lag) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sources = append(l.sources, lag)
}

// Lag returns the lag of every partition of every consumer added, in the
// order they were added.
func (l *Lags) Lag() []stream.Lag {
	l.mu.Lock()
	sources := l.sources
	l.mu.Unlock()
	var out []stream.Lag
	for _, s := range sources {
		out = append(out, s()...)
	}
	return out
}

// Backlog is the GetStatus answer of a service whose consumers lag by
// lags: one ConsumerLag per consumer and partition, the records not yet
// applied in all, and whether every consumer has heard its upstream's head
// and applied up to it (stream.Lag.CaughtUp). No consumers is caught up.
func Backlog(lags []stream.Lag) *commonv1.Backlog {
	b := &commonv1.Backlog{Consumers: make([]*commonv1.ConsumerLag, 0, len(lags)), CaughtUp: true}
	for _, l := range lags {
		behind := l.Head - min(l.Cursor, l.Head)
		b.Consumers = append(b.Consumers, &commonv1.ConsumerLag{
			Source: l.Name, Partition: l.Partition, Cursor: l.Cursor, Head: l.Head, Lag: behind, HeadKnown: l.Known,
		})
		b.Lag += behind
		b.CaughtUp = b.CaughtUp && l.CaughtUp()
	}
	return b
}

// MergeBacklog adds src, the backlog of another replica of the same
// service, to dst: its consumers after dst's, the records behind added
// up, caught up only if both are. A nil src changes nothing.
func MergeBacklog(dst, src *commonv1.Backlog) {
	if src == nil {
		return
	}
	dst.Consumers = append(dst.Consumers, src.GetConsumers()...)
	dst.Lag += src.GetLag()
	dst.CaughtUp = dst.GetCaughtUp() && src.GetCaughtUp()
	// A replica whose writes fail is news whichever replica it is.
	if st := src.GetStorage(); st != "" && !strings.Contains(dst.GetStorage(), st) {
		if dst.Storage != "" {
			dst.Storage += "; "
		}
		dst.Storage += st
	}
}
