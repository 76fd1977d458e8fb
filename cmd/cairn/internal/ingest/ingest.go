// Package ingest sends events to the ingestion service in batches over
// IngestStream and tallies the per-event results. The CLI's `cairn ingest` and
// the demo loader of `cairn run` share it, so both report the same summary.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Limits of one IngestRequest, from the contract (2,500 events, 500 KB). The
// byte budget leaves room for the envelope.
const (
	MaxBatchEvents = 2500
	maxBatchBytes  = 450 << 10
)

// Item is one event to send, with the position the user knows it by (a line
// number of an NDJSON file), so rejections can point back at the input.
type Item struct {
	Event *ingestionv1.Event
	Line  int
}

// Rejection is one event the caller or the server refused.
type Rejection struct {
	// Line is the Item's line.
	Line int
	// MessageID is the event's id, when known.
	MessageID string
	// Field is the offending field path, when known.
	Field string
	// Reason says why.
	Reason string
}

// Summary tallies one upload.
type Summary struct {
	Sent       int
	Accepted   int
	Duplicates int
	Rejected   int
	// Rejections lists the first rejections (at most MaxRejections), in input order
	// within each batch.
	Rejections []Rejection
}

// MaxRejections bounds Summary.Rejections so a bad file cannot flood the terminal.
const MaxRejections = 20

// Reject records a rejection that happened before sending (e.g. bad JSON).
func (s *Summary) Reject(r Rejection) {
	s.Rejected++
	if len(s.Rejections) < MaxRejections {
		s.Rejections = append(s.Rejections, r)
	}
}

// Options tunes Send.
type Options struct {
	// Workspace is sent in every request; empty means the key's workspace.
	Workspace string
	// BatchSize is the number of events per request (default 500, at most
	// MaxBatchEvents); batches are also cut at ~450 KB.
	BatchSize int
	// Progress, if set, is called after every answered batch with the number
	// of events answered so far and the total.
	Progress func(done, total int)
	// Wait pauses before resending a batch the server throttled
	// (RESOURCE_EXHAUSTED); nil waits on a real timer. Tests inject their own.
	Wait func(ctx context.Context, d time.Duration) error
	// Ordered sends one batch at a time (unary Ingest), so the log holds
	// the events in the order given. IngestStream commits the batches in
	// flight together and may log neighbouring batches swapped; a bulk
	// load sent in event-time order (the demo) then gives the same log,
	// and so the same derived figures, every time.
	Ordered bool
}

// Throttled batches are resent up to maxAttempts times, waiting the server's
// retry delay, or defaultRetryDelay when it gives none, capped at maxRetryDelay.
const (
	maxAttempts       = 10
	defaultRetryDelay = 100 * time.Millisecond
	maxRetryDelay     = 10 * time.Second
)

func (o Options) wait(ctx context.Context, d time.Duration) error {
	d = min(max(d, 0), maxRetryDelay)
	if d == 0 {
		d = defaultRetryDelay
	}
	if o.Wait != nil {
		return o.Wait(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryDelay is the RetryInfo delay of a status error, or 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// lines names a batch by the input lines it holds.
func lines(batch []Item) string {
	if len(batch) == 0 {
		return "no lines"
	}
	return fmt.Sprintf("lines %d-%d", batch[0].Line, batch[len(batch)-1].Line)
}

// Batches splits items into requests that respect the contract's limits.
func Batches(items []Item, size int) [][]Item {
	if size <= 0 {
		size = 500
	}
	size = min(size, MaxBatchEvents)
	var out [][]Item
	var cur []Item
	bytes := 0
	for _, it := range items {
		n := proto.Size(it.Event) + 8
		if len(cur) > 0 && (len(cur) >= size || bytes+n > maxBatchBytes) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, it)
		bytes += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Send uploads items over IngestStream, pipelining batches, and adds the
// results to sum. When the server does not implement IngestStream it falls
// back to unary Ingest calls. It returns the first transport or status error;
// per-event rejections are not errors.
func Send(ctx context.Context, client ingestionv1.IngestionServiceClient, items []Item, opts Options, sum *Summary) error {
	batches := Batches(items, opts.BatchSize)
	if len(batches) == 0 {
		return nil
	}
	if opts.Ordered {
		return sendUnary(ctx, client, batches, len(items), opts, sum)
	}
	err := sendStream(ctx, client, batches, len(items), opts, sum)
	if status.Code(err) == codes.Unimplemented {
		return sendUnary(ctx, client, batches, len(items), opts, sum)
	}
	return err
}

func request(workspace string, batch []Item) *ingestionv1.IngestRequest {
	req := &ingestionv1.IngestRequest{Workspace: workspace, Events: make([]*ingestionv1.Event, len(batch))}
	for i, it := range batch {
		req.Events[i] = it.Event
	}
	return req
}

// tally adds one batch's response to sum.
func tally(sum *Summary, batch []Item, resp *ingestionv1.IngestResponse) {
	sum.Sent += len(batch)
	sum.Accepted += int(resp.GetAccepted())
	sum.Duplicates += int(resp.GetDuplicates())
	for _, r := range resp.GetResults() {
		if r.GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_REJECTED {
			continue
		}
		rej := Rejection{MessageID: r.GetMessageId(), Field: r.GetField(), Reason: r.GetReason()}
		if i := int(r.GetIndex()); i >= 0 && i < len(batch) {
			rej.Line = batch[i].Line
			// "events[3].properties.seats" numbers the event within its
			// batch, which means nothing to the user; Line locates it.
			rej.Field = strings.TrimPrefix(strings.TrimPrefix(rej.Field, fmt.Sprintf("events[%d]", i)), ".")
		}
		sum.Reject(rej)
	}
}

func sendUnary(ctx context.Context, client ingestionv1.IngestionServiceClient, batches [][]Item, total int, opts Options, sum *Summary) error {
	done := 0
	for _, b := range batches {
		resp, err := client.Ingest(ctx, request(opts.Workspace, b))
		for attempt := 1; status.Code(err) == codes.ResourceExhausted && attempt < maxAttempts; attempt++ {
			if werr := opts.wait(ctx, retryDelay(err)); werr != nil {
				return werr
			}
			resp, err = client.Ingest(ctx, request(opts.Workspace, b))
		}
		if err != nil {
			return fmt.Errorf("ingest batch of %d events (%s): %w", len(b), lines(b), err)
		}
		tally(sum, b, resp)
		done += len(b)
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	return nil
}

func sendStream(ctx context.Context, client ingestionv1.IngestionServiceClient, batches [][]Item, total int, opts Options, sum *Summary) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.IngestStream(ctx)
	if err != nil {
		return fmt.Errorf("open ingest stream: %w", err)
	}
	// The sender is the only goroutine that calls Send: fresh batches in
	// order, and batches the server throttled once their delay has passed.
	// It closes the stream only when every batch is answered, since a
	// throttled batch may still have to go out again.
	resend := make(chan int, len(batches))
	finished := make(chan struct{})
	sendErr := make(chan error, 1)
	go func() {
		next := 0
		for {
			var i int
			if next < len(batches) {
				select {
				case i = <-resend:
				default:
					i, next = next, next+1
				}
			} else {
				select {
				case i = <-resend:
				case <-finished:
					sendErr <- stream.CloseSend()
					return
				case <-ctx.Done():
					sendErr <- nil
					return
				}
			}
			if err := stream.Send(&ingestionv1.IngestStreamRequest{Sequence: uint64(i), Batch: request(opts.Workspace, batches[i])}); err != nil {
				// The receive side sees the real status; io.EOF here only
				// means the server closed the stream.
				if errors.Is(err, io.EOF) {
					sendErr <- nil
				} else {
					sendErr <- fmt.Errorf("send batch %d: %w", i, err)
				}
				return
			}
		}
	}()
	stop := func(err error) error {
		cancel()
		<-sendErr
		return err
	}
	attempts := make([]int, len(batches))
	done := 0
	for answered := 0; answered < len(batches); {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return stop(fmt.Errorf("ingest stream ended after %d of %d batches", answered, len(batches)))
			}
			if answered == 0 && status.Code(err) == codes.Unimplemented {
				return stop(err)
			}
			return stop(fmt.Errorf("ingest stream: %w", err))
		}
		seq := resp.GetSequence()
		if seq >= uint64(len(batches)) {
			return stop(fmt.Errorf("ingest stream: response for unknown sequence %d", seq))
		}
		b := batches[seq]
		if be := resp.GetError(); be != nil {
			code := codes.Code(be.GetCode())
			if attempts[seq]++; code == codes.ResourceExhausted && attempts[seq] < maxAttempts {
				go func() {
					if opts.wait(ctx, be.GetRetryDelay().AsDuration()) == nil {
						resend <- int(seq)
					}
				}()
				continue
			}
			return stop(fmt.Errorf("ingest batch of %d events (%s): %w", len(b), lines(b), status.Error(code, be.GetMessage())))
		}
		tally(sum, b, resp.GetResult())
		answered++
		done += len(b)
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	close(finished)
	return <-sendErr
}
