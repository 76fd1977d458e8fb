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

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeIngestion accepts every event except those named "bad", and reports
// message ids it has seen as duplicates.
type fakeIngestion struct {
	ingestionv1.UnimplementedIngestionServiceServer
	noStream bool

	mu       sync.Mutex
	seen     map[string]bool
	requests int
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
		if err := s.Send(&ingestionv1.IngestStreamResponse{Sequence: req.GetSequence(), Result: f.answer(req.GetBatch())}); err != nil {
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
		batch     int
		events    []string
		twice     bool
		want      Summary
		wantCalls int
	}{
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
			opts := Options{BatchSize: tt.batch, Progress: func(done, total int) { progress = append(progress, done) }}
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
			if len(progress) == 0 || progress[len(progress)-1] != len(tt.events) {
				t.Errorf("progress = %v, want it to end at %d", progress, len(tt.events))
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
