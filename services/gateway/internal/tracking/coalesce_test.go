package tracking

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

// blockingIngest is an ingestion client whose calls wait until released.
// It accepts every event except those named "bad", which it rejects with a
// field path as ingestion does ("events[i].event").
type blockingIngest struct {
	ingestionv1.IngestionServiceClient

	mu      sync.Mutex
	calls   [][]string // event names of each call
	started chan struct{}
	release chan struct{}
	fail    error
}

func newBlockingIngest() *blockingIngest {
	return &blockingIngest{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blockingIngest) Ingest(ctx context.Context, req *ingestionv1.IngestRequest, _ ...grpc.CallOption) (*ingestionv1.IngestResponse, error) {
	var names []string
	for _, e := range req.GetEvents() {
		names = append(names, e.GetEvent())
	}
	b.mu.Lock()
	b.calls = append(b.calls, names)
	b.mu.Unlock()
	b.started <- struct{}{}
	<-b.release
	if b.fail != nil {
		return nil, b.fail
	}
	resp := &ingestionv1.IngestResponse{}
	for i, e := range req.GetEvents() {
		r := &ingestionv1.EventResult{Index: int32(i), MessageId: e.GetMessageId(), Status: ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED}
		if e.GetEvent() == "bad" {
			r.Status, r.Field, r.Reason = ingestionv1.EventStatus_EVENT_STATUS_REJECTED, fmt.Sprintf("events[%d].event", i), "bad name"
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func events(names ...string) []*ingestionv1.Event {
	var out []*ingestionv1.Event
	for _, n := range names {
		out = append(out, &ingestionv1.Event{Event: n, MessageId: "m-" + n})
	}
	return out
}

// queued waits until the lane of key holds n waiting requests.
func queued(c *Coalescer, key string, n int) {
	for {
		c.mu.Lock()
		l := c.lanes[key]
		got := 0
		if l != nil {
			got = len(l.queue)
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
		runtime.Gosched()
	}
}

type answer struct {
	resp *ingestionv1.IngestResponse
	err  error
}

func TestCoalescerMergesWhileBusy(t *testing.T) {
	ing := newBlockingIngest()
	c := &Coalescer{Client: ing, MaxInFlight: 1}
	ctx := context.Background()
	answers := make([]chan answer, 4)
	ask := func(i int, names ...string) {
		answers[i] = make(chan answer, 1)
		go func() {
			resp, err := c.Ingest(ctx, "k1", events(names...))
			answers[i] <- answer{resp, err}
		}()
	}
	ask(0, "first")
	<-ing.started // the first call runs alone, at once
	ask(1, "a", "bad")
	queued(c, "k1", 1)
	ask(2, "bad", "b")
	queued(c, "k1", 2)
	ask(3, "c")
	queued(c, "k1", 3)
	ing.release <- struct{}{} // the first call ends; the queue goes as one call
	<-ing.started
	ing.release <- struct{}{}

	want := []struct {
		accepted, rejected int32
		rejectedAt         int
	}{{1, 0, -1}, {1, 1, 1}, {1, 1, 0}, {1, 0, -1}}
	for i, w := range want {
		a := <-answers[i]
		if a.err != nil {
			t.Fatalf("request %d: %v", i, a.err)
		}
		if a.resp.GetAccepted() != w.accepted || a.resp.GetRejected() != w.rejected {
			t.Fatalf("request %d: accepted %d rejected %d, want %d %d", i, a.resp.GetAccepted(), a.resp.GetRejected(), w.accepted, w.rejected)
		}
		for j, r := range a.resp.GetResults() {
			if int(r.GetIndex()) != j {
				t.Fatalf("request %d: result %d has index %d", i, j, r.GetIndex())
			}
			if r.GetStatus() == ingestionv1.EventStatus_EVENT_STATUS_REJECTED {
				if j != w.rejectedAt || r.GetField() != fmt.Sprintf("events[%d].event", j) {
					t.Fatalf("request %d: rejection at %d field %q, want at %d naming its own index", i, j, r.GetField(), w.rejectedAt)
				}
			}
		}
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if got := fmt.Sprint(ing.calls); got != "[[first] [a bad bad b c]]" {
		t.Fatalf("calls = %s, want the first alone and the three queued requests merged", got)
	}
	drained(c)
}

// drained waits until every lane has ended, as each does once its last call
// has answered everyone (a lane left behind would hang this test).
func drained(c *Coalescer) {
	for {
		c.mu.Lock()
		n := len(c.lanes)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		runtime.Gosched()
	}
}

func TestCoalescerFailsEveryRequestOfAFailedCall(t *testing.T) {
	ing := newBlockingIngest()
	ing.fail = status.Error(codes.Unavailable, "disk full")
	c := &Coalescer{Client: ing, MaxInFlight: 1}
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Ingest(context.Background(), "k", events(fmt.Sprint("e", i)))
			errs <- err
		}()
		if i == 0 {
			<-ing.started
		} else {
			queued(c, "k", i)
		}
	}
	ing.release <- struct{}{}
	<-ing.started
	ing.release <- struct{}{}
	for range 3 {
		if err := <-errs; status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want the call's Unavailable", err)
		}
	}
}

// TestCoalescerCallerLeaves: a caller whose context ends stops waiting, and
// the call that carries its events still ends the lane properly.
func TestCoalescerCallerLeaves(t *testing.T) {
	ing := newBlockingIngest()
	c := &Coalescer{Client: ing, MaxInFlight: 1}
	first := make(chan error, 1)
	go func() {
		_, err := c.Ingest(context.Background(), "k", events("first"))
		first <- err
	}()
	<-ing.started
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := c.Ingest(ctx, "k", events("leaver"))
		left <- err
	}()
	queued(c, "k", 1)
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	ing.release <- struct{}{}
	<-ing.started // the leaver's events are still sent
	ing.release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	drained(c)
}

func TestCoalescerLargeRequestsBypass(t *testing.T) {
	ing := newBlockingIngest()
	c := &Coalescer{Client: ing, MaxEvents: 2}
	done := make(chan error, 1)
	go func() {
		_, err := c.Ingest(context.Background(), "k", events("a", "b", "c"))
		done <- err
	}()
	<-ing.started
	ing.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lanes != nil {
		t.Fatal("a large request went through a lane")
	}
	if got := strings.Join(ing.calls[0], ","); got != "a,b,c" {
		t.Fatalf("call = %s", got)
	}
}
