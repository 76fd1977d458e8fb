package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/ingestion/internal/app"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FuzzIngest decodes arbitrary bytes as an IngestRequest and runs it through
// validation and the store: nothing may panic, a refused batch names the
// events field, every rejected event names its own field, and every
// accepted event has a log position.
func FuzzIngest(f *testing.F) {
	seeds := []*ingestionv1.IngestRequest{
		{Events: []*ingestionv1.Event{track("a", "u", "acme", "x", nil), track("a", "u", "", "y", nil)}},
		{Events: []*ingestionv1.Event{track("b", "u", "", "survey.nps", map[string]any{"score": 11})}},
		{Events: []*ingestionv1.Event{{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: "u", GroupId: "g",
			SentAt: timestamppb.New(t0), OriginalTimestamp: timestamppb.New(t0.Add(-time.Hour))}}},
		{Workspace: "w", Events: []*ingestionv1.Event{{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "u"}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	lim := validate.DefaultLimits()
	lim.MaxBatchEvents = 50
	a, err := app.New(storetest.Open(f), app.Options{Partitions: 4, DedupWindow: time.Hour, Clock: clock.NewManual(t0)})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := server.New(a, server.Config{Limits: lim, Clock: clock.NewManual(t0)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &ingestionv1.IngestRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		resp, err := server.IngestBatch(srv, context.Background(), "w", req)
		if err != nil {
			var inv *apierr.FieldError
			if !errors.As(err, &inv) || !strings.HasPrefix(inv.Error(), "events: ") {
				t.Fatalf("ingest() = %v, want a batch error naming events", err)
			}
			return
		}
		if len(resp.GetResults()) != len(req.GetEvents()) {
			t.Fatalf("%d results for %d events", len(resp.GetResults()), len(req.GetEvents()))
		}
		for i, r := range resp.GetResults() {
			switch r.GetStatus() {
			case ingestionv1.EventStatus_EVENT_STATUS_REJECTED:
				if !strings.HasPrefix(r.GetField(), "events[") || r.GetReason() == "" {
					t.Fatalf("results[%d] rejected without field or reason: %v", i, r)
				}
			case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED:
				if r.GetPosition() == nil || r.GetMessageId() == "" {
					t.Fatalf("results[%d] accepted without position or id: %v", i, r)
				}
			case ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
			default:
				t.Fatalf("results[%d] has status %v", i, r.GetStatus())
			}
		}
	})
}
