package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeIngestion accepts every event except those named "bad", and reports
// message ids it has seen as duplicates.
type fakeIngestion struct {
	ingestionv1.UnimplementedIngestionServiceServer
	noStream bool
	// throttle is how many requests holding an event named "slow" are
	// refused with RESOURCE_EXHAUSTED before one is admitted.
	throttle int

	mu       sync.Mutex
	seen     map[string]bool
	requests int
	unary    int // requests by unary Ingest
}

// fakeRetryDelay is the delay the fake asks throttled callers to wait.
const fakeRetryDelay = 2 * time.Second

// refusal is the error for a request the fake refuses as a whole: a batch
// holding an event named "refuse" is invalid, one holding "slow" is
// throttled while f.throttle lasts.
func (f *fakeIngestion) refusal(req *ingestionv1.IngestRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range req.GetEvents() {
		switch {
		case ev.GetEvent() == "refuse":
			f.requests++
			return status.Error(codes.InvalidArgument, "events: too many")
		case ev.GetEvent() == "slow" && f.throttle > 0:
			f.requests++
			f.throttle--
			st, _ := status.New(codes.ResourceExhausted, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(fakeRetryDelay)})
			return st.Err()
		}
	}
	return nil
}

func (f *fakeIngestion) answer(req *ingestionv1.IngestRequest) *ingestionv1.IngestResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	resp := &ingestionv1.IngestResponse{}
	for i, ev := range req.GetEvents() {
		r := &ingestionv1.EventResult{Index: int32(i), MessageId: ev.GetMessageId()}
		switch {
		case ev.GetEvent() == "bad":
			r.Status, r.Field, r.Reason = ingestionv1.EventStatus_EVENT_STATUS_REJECTED, fmt.Sprintf("events[%d].event", i), "bad name"
			resp.Rejected++
		case f.seen[ev.GetMessageId()]:
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE
			resp.Duplicates++
		default:
			f.seen[ev.GetMessageId()] = true
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED
			resp.Accepted++
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

func (f *fakeIngestion) Ingest(_ context.Context, req *ingestionv1.IngestRequest) (*ingestionv1.IngestResponse, error) {
	f.mu.Lock()
	f.unary++
	f.mu.Unlock()
	if err := f.refusal(req); err != nil {
		return nil, err
	}
	return f.answer(req), nil
}

func (f *fakeIngestion) IngestStream(s grpc.BidiStreamingServer[ingestionv1.IngestStreamRequest, ingestionv1.IngestStreamResponse]) error {
	if f.noStream {
		return status.Error(codes.Unimplemented, "no stream")
	}
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &ingestionv1.IngestStreamResponse{Sequence: req.GetSequence()}
		if err := f.refusal(req.GetBatch()); err != nil {
			st := status.Convert(err)
			resp.Error = &ingestionv1.BatchError{Code: int32(st.Code()), Message: st.Message()}
			if st.Code() == codes.ResourceExhausted {
				resp.Error.RetryDelay = durationpb.New(fakeRetryDelay)
			}
		} else {
			resp.Result = f.answer(req.GetBatch())
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

func dial(t *testing.T, srv ingestionv1.IngestionServiceServer) ingestionv1.IngestionServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	ingestionv1.RegisterIngestionServiceServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		s.Stop()
	})
	return ingestionv1.NewIngestionServiceClient(conn)
}

func items(names ...string) []Item {
	out := make([]Item, len(names))
	for i, n := range names {
		out[i] = Item{Line: i + 1, Event: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: n, MessageId: fmt.Sprintf("m%d", i), UserId: "u"}}
	}
	return out
}

func TestSend(t *testing.T) {
	tests := []struct {
		name      string
		noStream  bool
		ordered   bool
		batch     int
		events    []string
		twice     bool
		want      Summary
		wantCalls int
	}{
		{
			name: "ordered: one unary batch at a time although the stream exists", ordered: true, batch: 2,
			events:    []string{"a", "b", "bad", "c", "d"},
			want:      Summary{Sent: 5, Accepted: 4, Rejected: 1, Rejections: []Rejection{{Line: 3, MessageID: "m2", Field: "event", Reason: "bad name"}}},
			wantCalls: 3,
		},
		{
			name: "stream, batches of 2, one rejection", batch: 2,
			events:    []string{"a", "b", "bad", "c", "d"},
			want:      Summary{Sent: 5, Accepted: 4, Rejected: 1, Rejections: []Rejection{{Line: 3, MessageID: "m2", Field: "event", Reason: "bad name"}}},
			wantCalls: 3,
		},
		{
			name: "unary fallback when IngestStream is unimplemented", noStream: true, batch: 500,
			events:    []string{"a", "bad", "c"},
			want:      Summary{Sent: 3, Accepted: 2, Rejected: 1, Rejections: []Rejection{{Line: 2, MessageID: "m1", Field: "event", Reason: "bad name"}}},
			wantCalls: 1,
		},
		{
			name: "second upload is all duplicates", batch: 10, twice: true,
			events:    []string{"a", "b"},
			want:      Summary{Sent: 4, Accepted: 2, Duplicates: 2},
			wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIngestion{noStream: tt.noStream, seen: map[string]bool{}}
			client := dial(t, f)
			var sum Summary
			var progress []int
			opts := Options{BatchSize: tt.batch, Ordered: tt.ordered, Progress: func(done, total int) { progress = append(progress, done) }}
			rounds := 1
			if tt.twice {
				rounds = 2
			}
			for range rounds {
				if err := Send(context.Background(), client, items(tt.events...), opts, &sum); err != nil {
					t.Fatalf("Send: %v", err)
				}
			}
			if fmt.Sprint(sum) != fmt.Sprint(tt.want) {
				t.Errorf("summary = %+v, want %+v", sum, tt.want)
			}
			if f.requests != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", f.requests, tt.wantCalls)
			}
			if tt.ordered && f.unary != tt.wantCalls {
				t.Errorf("ordered upload made %d unary calls of %d requests, want all unary", f.unary, f.requests)
			}
			if len(progress) == 0 || progress[len(progress)-1] != len(tt.events) {
				t.Errorf("progress = %v, want it to end at %d", progress, len(tt.events))
			}
		})
	}
}

// TestSendRefusedBatches checks that throttled batches are resent after the
// server's delay, on the stream and unary paths alike, and that a batch
// refused for good stops the upload with an error naming its lines.
func TestSendRefusedBatches(t *testing.T) {
	tests := []struct {
		name      string
		noStream  bool
		events    []string
		throttle  int
		want      Summary
		wantWaits int
		wantCode  codes.Code
		wantErr   string
	}{
		{name: "stream: throttled twice, then admitted", events: []string{"a", "b", "slow", "c", "d"}, throttle: 2,
			want: Summary{Sent: 5, Accepted: 5}, wantWaits: 2},
		{name: "unary: throttled twice, then admitted", noStream: true, events: []string{"a", "b", "slow", "c", "d"}, throttle: 2,
			want: Summary{Sent: 5, Accepted: 5}, wantWaits: 2},
		{name: "stream: throttled past the attempt limit", events: []string{"slow"}, throttle: 100,
			wantWaits: maxAttempts - 1, wantCode: codes.ResourceExhausted, wantErr: "lines 1-1"},
		{name: "stream: refused batch", events: []string{"a", "b", "refuse", "c"},
			wantCode: codes.InvalidArgument, wantErr: "lines 3-4"},
		{name: "unary: refused batch", noStream: true, events: []string{"a", "b", "refuse", "c"},
			wantCode: codes.InvalidArgument, wantErr: "lines 3-4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIngestion{noStream: tt.noStream, throttle: tt.throttle, seen: map[string]bool{}}
			var (
				mu    sync.Mutex
				waits []time.Duration
			)
			opts := Options{BatchSize: 2, Wait: func(_ context.Context, d time.Duration) error {
				mu.Lock()
				defer mu.Unlock()
				waits = append(waits, d)
				return nil
			}}
			var sum Summary
			err := Send(context.Background(), dial(t, f), items(tt.events...), opts, &sum)
			if status.Code(errors.Unwrap(err)) != tt.wantCode && status.Code(err) != tt.wantCode {
				t.Fatalf("Send() = %v, want code %v", err, tt.wantCode)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Send() = %v, want it to name %q", err, tt.wantErr)
			}
			if tt.wantCode == codes.OK && fmt.Sprint(sum) != fmt.Sprint(tt.want) {
				t.Errorf("summary = %+v, want %+v", sum, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(waits) != tt.wantWaits {
				t.Errorf("waited %d times (%v), want %d", len(waits), waits, tt.wantWaits)
			}
			for _, d := range waits {
				if d != fakeRetryDelay {
					t.Errorf("waited %v, want the server's %v", d, fakeRetryDelay)
				}
			}
		})
	}
}

func TestSendStatusError(t *testing.T) {
	client := dial(t, &ingestionv1.UnimplementedIngestionServiceServer{})
	var sum Summary
	err := Send(context.Background(), client, items("a"), Options{}, &sum)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Send against a server without Ingest = %v, want Unimplemented", err)
	}
}

func TestBatches(t *testing.T) {
	big, _ := structpb.NewStruct(map[string]any{"blob": strings.Repeat("x", 100<<10)})
	bigItems := make([]Item, 10)
	for i := range bigItems {
		bigItems[i] = Item{Event: &ingestionv1.Event{Properties: big}}
	}
	tests := []struct {
		name  string
		items []Item
		size  int
		want  []int
	}{
		{name: "empty", items: nil, size: 500, want: nil},
		{name: "count limit", items: items("a", "b", "c", "d", "e"), size: 2, want: []int{2, 2, 1}},
		{name: "default size", items: items("a", "b"), size: 0, want: []int{2}},
		{name: "size capped at the contract's limit", items: make([]Item, 2600), size: 5000, want: []int{2500, 100}},
		{name: "byte limit", items: bigItems, size: 500, want: []int{4, 4, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.items {
				if tt.items[i].Event == nil {
					tt.items[i].Event = &ingestionv1.Event{}
				}
			}
			var got []int
			for _, b := range Batches(tt.items, tt.size) {
				got = append(got, len(b))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("batch sizes = %v, want %v", got, tt.want)
			}
		})
	}
}
