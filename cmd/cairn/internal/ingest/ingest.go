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

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
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
		if err != nil {
			return fmt.Errorf("ingest batch of %d events: %w", len(b), err)
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
	sendErr := make(chan error, 1)
	go func() {
		for i, b := range batches {
			if err := stream.Send(&ingestionv1.IngestStreamRequest{Sequence: uint64(i), Batch: request(opts.Workspace, b)}); err != nil {
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
		sendErr <- stream.CloseSend()
	}()
	done := 0
	for answered := 0; answered < len(batches); answered++ {
		resp, err := stream.Recv()
		if err != nil {
			cancel()
			<-sendErr
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("ingest stream ended after %d of %d batches", answered, len(batches))
			}
			if answered == 0 && status.Code(err) == codes.Unimplemented {
				return err
			}
			return fmt.Errorf("ingest stream: %w", err)
		}
		seq := resp.GetSequence()
		if seq >= uint64(len(batches)) {
			cancel()
			<-sendErr
			return fmt.Errorf("ingest stream: response for unknown sequence %d", seq)
		}
		tally(sum, batches[seq], resp.GetResult())
		done += len(batches[seq])
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	if err := <-sendErr; err != nil {
		return err
	}
	return nil
}
