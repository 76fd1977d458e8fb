package tracking

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
)

// Coalescer merges small tracking requests that arrive together under the
// same write key into one Ingest call.
//
// A single Segment call (/v1/track, /v1/identify, a one-event /v1/batch) made
// one Ingest call each, and each call costs a gRPC round trip, the ingestion
// service's interceptors and a share of a commit: single events cost the
// whole suite about five times what the same events cost in batches of 100.
// The coalescer works like group commit: while a key has fewer than
// MaxInFlight calls running, a request is sent at once, so nothing waits when
// traffic is light; requests that arrive while the calls are busy queue, and
// the next call carries all of them. Large requests bypass it.
//
// Every request still gets the results of its own events, re-indexed, and a
// call that fails fails each request it carried with the same error. A
// merged call carries the metadata (request id, trace) of the request that
// sent it.
type Coalescer struct {
	// Client is the ingestion service.
	Client ingestionv1.IngestionServiceClient
	// MaxEvents caps the events of one request that may be merged (default
	// 10) and of one merged call (default 500).
	MaxEvents, MaxCall int
	// MaxInFlight is how many calls each key may have running (default 4).
	MaxInFlight int
	// Timeout bounds a merged call, which no single caller's context ends
	// (default 30 s).
	Timeout time.Duration

	mu    sync.Mutex
	lanes map[string]*lane
}

// vtCodec encodes the tracking path's requests with the generated
// encoder: the Segment decoder has already refused what proto.Marshal would
// (pkg/server.VTCodec).
var vtCodec = grpc.ForceCodecV2(pkgserver.VTCodec{})

// lane is one write key's calls: how many are running and who waits.
type lane struct {
	running int
	queue   []*waiter
	events  int
}

// waiter is one request waiting for a call to carry it.
type waiter struct {
	ctx    context.Context
	events []*ingestionv1.Event
	done   chan outcome
}

type outcome struct {
	resp *ingestionv1.IngestResponse
	err  error
}

func (c *Coalescer) limits() (perRequest, perCall, inFlight int, timeout time.Duration) {
	perRequest, perCall, inFlight, timeout = c.MaxEvents, c.MaxCall, c.MaxInFlight, c.Timeout
	if perRequest <= 0 {
		perRequest = 10
	}
	if perCall <= 0 {
		perCall = 500
	}
	if inFlight <= 0 {
		inFlight = 4
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return perRequest, perCall, inFlight, timeout
}

// Ingest ingests events for the caller whose credentials ctx carries
// (outgoing metadata), merged with other requests of the same key when
// ingestion is busy. The response has one result per event of this request.
func (c *Coalescer) Ingest(ctx context.Context, key string, events []*ingestionv1.Event) (*ingestionv1.IngestResponse, error) {
	perRequest, perCall, inFlight, _ := c.limits()
	if len(events) > perRequest {
		return c.Client.Ingest(ctx, &ingestionv1.IngestRequest{Events: events}, vtCodec)
	}
	w := &waiter{ctx: ctx, events: events, done: make(chan outcome, 1)}
	c.mu.Lock()
	if c.lanes == nil {
		c.lanes = map[string]*lane{}
	}
	l := c.lanes[key]
	if l == nil {
		l = &lane{}
		c.lanes[key] = l
	}
	switch {
	case l.running < inFlight:
		l.running++
		c.mu.Unlock()
		go c.send(key, []*waiter{w})
	case l.events+len(events) >= perCall:
		// A full queue does not wait for a call to finish: it is sent now,
		// over the in-flight bound, as its requests would have been
		// without the coalescer.
		batch := append(l.queue, w)
		l.queue, l.events = nil, 0
		l.running++
		c.mu.Unlock()
		go c.send(key, batch)
	default:
		l.queue = append(l.queue, w)
		l.events += len(events)
		c.mu.Unlock()
	}
	select {
	case out := <-w.done:
		return out.resp, out.err
	case <-ctx.Done():
		// The call that carries the events may still store them; an SDK
		// retries, and the message id makes that a duplicate.
		return nil, ctx.Err()
	}
}

// send makes one Ingest call for batch and answers each waiter, then does
// the same for what queued meanwhile, until the lane's queue is empty.
func (c *Coalescer) send(key string, batch []*waiter) {
	_, perCall, _, timeout := c.limits()
	for len(batch) > 0 {
		var events []*ingestionv1.Event
		for _, w := range batch {
			events = append(events, w.events...)
		}
		// The call belongs to all of batch: no single caller's
		// cancellation ends it, but it carries the first caller's
		// credentials and metadata.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), timeout)
		resp, err := c.Client.Ingest(ctx, &ingestionv1.IngestRequest{Events: events}, vtCodec)
		cancel()
		split(batch, resp, err)
		batch = c.next(key, perCall)
	}
}

// next takes the lane's queued requests, up to perCall events, or ends the
// lane's call when nothing is queued.
func (c *Coalescer) next(key string, perCall int) []*waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lanes[key]
	if len(l.queue) == 0 {
		l.running--
		if l.running == 0 {
			delete(c.lanes, key)
		}
		return nil
	}
	n, size := 0, 0
	for n < len(l.queue) && (n == 0 || size+len(l.queue[n].events) <= perCall) {
		size += len(l.queue[n].events)
		n++
	}
	batch := l.queue[:n:n]
	l.queue = l.queue[n:]
	l.events -= size
	return batch
}

// split answers each waiter of batch with the results of its own events.
func split(batch []*waiter, resp *ingestionv1.IngestResponse, err error) {
	if err != nil {
		for _, w := range batch {
			w.done <- outcome{err: err}
		}
		return
	}
	own := make([]*ingestionv1.IngestResponse, len(batch))
	starts := make([]int, len(batch))
	at := 0
	for k, w := range batch {
		own[k] = &ingestionv1.IngestResponse{}
		starts[k] = at
		at += len(w.events)
	}
	for _, r := range resp.GetResults() {
		g := int(r.GetIndex())
		if g < 0 || g >= at {
			continue
		}
		// The waiter whose events hold position g: the last start <= g.
		k, found := slices.BinarySearch(starts, g)
		if !found {
			k--
		}
		i := g - starts[k]
		r.Index = int32(i)
		if rest, ok := strings.CutPrefix(r.GetField(), fmt.Sprintf("events[%d]", g)); ok {
			r.Field = fmt.Sprintf("events[%d]", i) + rest
		}
		o := own[k]
		o.Results = append(o.Results, r)
		switch r.GetStatus() {
		case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED:
			o.Accepted++
		case ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
			o.Duplicates++
		case ingestionv1.EventStatus_EVENT_STATUS_REJECTED:
			o.Rejected++
		}
	}
	for k, w := range batch {
		w.done <- outcome{resp: own[k]}
	}
}
