package stream_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestConsumerReady: a consumer is not ready until it has heard its
// upstream's head, says "unreachable" with the cause while subscriptions
// fail, and is ready once the upstream answers, backlog or not.
func TestConsumerReady(t *testing.T) {
	_, up := openLog(t, stream.LogOptions{})
	up.Append(context.Background(), 0, []byte("a"), []byte("b"))
	clk := clock.NewManual(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	down := storetest.Open(t)
	refused := errors.New("dial 127.0.0.1:7101: connection refused")
	reachable := make(chan struct{})
	local := stream.LocalSource(up, decodeString)
	src := func(ctx context.Context, p uint32, from uint64) (stream.Subscription[stream.Record], error) {
		select {
		case <-reachable:
			return local(ctx, p, from)
		default:
			return nil, refused
		}
	}
	c, err := stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
		Name: "ingestion", DB: down, Source: src, Partitions: []uint32{0},
		Offset: func(r stream.Record) uint64 { return r.Offset }, Apply: applyRecords, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "ingestion: 1 of 1 partitions have not heard the upstream head yet") {
		t.Fatalf("before running: Ready() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for clk.Waiters() == 0 { // the first subscription failed; the consumer waits out its backoff
		runtime.Gosched()
	}
	if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "ingestion: 1 of 1 partitions unreachable: ") || !errors.Is(err, refused) {
		t.Fatalf("upstream down: Ready() = %v", err)
	}
	close(reachable)
	clk.Advance(time.Minute)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitFor(wctx, 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(); err != nil {
		t.Fatalf("upstream reached: Ready() = %v", err)
	}
	cancel()
	<-done
}
