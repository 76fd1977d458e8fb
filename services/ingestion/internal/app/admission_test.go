package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

func TestCallClasses(t *testing.T) {
	c := newCalls(Admission{Writes: 1, WritesPerKey: 1, Streams: 1, StreamsPerKey: 1, Readers: 1, ReadersPerKey: 1, Subscribers: 1, SubscribersPerKey: 1}, clock.Real{})
	tests := []struct {
		method string
		want   string // class name, "" when not admitted
	}{
		{ingestionv1.IngestionService_Ingest_FullMethodName, "ingestion writes"},
		{ingestionv1.IngestionService_IngestStream_FullMethodName, "ingestion streams"},
		{ingestionv1.IngestionService_Subscribe_FullMethodName, "ingestion subscribers"},
		{ingestionv1.IngestionService_ListAccountEvents_FullMethodName, "ingestion reads"},
		{ingestionv1.IngestionService_GetLogInfo_FullMethodName, "ingestion reads"},
		{ingestionv1.IngestionService_DeleteSubject_FullMethodName, "ingestion reads"},
		{"/grpc.health.v1.Health/Check", ""},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", ""},
		{"/cairn.ingestion.v1.IngestionServiceX/Ingest", ""},
	}
	for _, tt := range tests {
		got := ""
		if ctl := c.class(tt.method); ctl != nil {
			got = ctl.Name()
		}
		if got != tt.want {
			t.Errorf("class(%s) = %q, want %q", tt.method, got, tt.want)
		}
	}
}

// TestLagBudget: writes are refused with ResourceExhausted and a retry
// delay while a subscriber has more records left to receive than the lag
// budget, and accepted again once it has received them.
func TestLagBudget(t *testing.T) {
	clk := clock.NewManual(t0)
	s, err := New(storetest.Open(t), Options{Partitions: 1, DedupWindow: window, Clock: clk, LagBudget: 3})
	if err != nil {
		t.Fatal(err)
	}
	event := func(i int) *ingestionv1.Event {
		return ev(t, clk, &ingestionv1.Event{MessageId: fmt.Sprintf("m-%d", i), UserId: "u", Context: withGroup("a"), Timestamp: timestamppb.New(t0)})
	}
	for i := 0; i < 5; i++ {
		ingest(t, s, "ws", event(i)) // nobody subscribed: no lag, no bound
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.SubscribeEncoded(ctx, 0, 1, func([]byte) error {
			select {
			case sent <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	<-sent // the five records are handed over
	for i := 5; i < 9; i++ {
		ingest(t, s, "ws", event(i)) // accepted while at most 3 behind
	}
	if got := s.SubscriberLag(); got != 4 {
		t.Errorf("SubscriberLag = %d, want 4", got)
	}
	_, err = s.Ingest(context.Background(), "ws", []*ingestionv1.Event{event(100)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Ingest 4 behind with a budget of 3 = %v, want ResourceExhausted", err)
	}
	st, _ := status.FromError(err)
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != time.Second {
		t.Errorf("retry info = %v, want a 1s delay", retry)
	}
	if !strings.Contains(st.Message(), "lag budget") {
		t.Errorf("message %q does not name the lag budget", st.Message())
	}
	if s.LagShed() != 1 {
		t.Errorf("LagShed = %d, want 1", s.LagShed())
	}
	release <- struct{}{}
	<-sent // the four new records are handed over: caught up
	if got := s.SubscriberLag(); got != 0 {
		t.Errorf("SubscriberLag once caught up = %d, want 0", got)
	}
	ingest(t, s, "ws", event(101))
	cancel()
	<-done
}
