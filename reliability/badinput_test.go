package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

// nested returns a Struct nested depth levels deep.
func nested(depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"leaf": structpb.NewStringValue("x")}}
	for range depth - 1 {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewStructValue(s)}}
	}
	return s
}

// TestBadInput sends hostile and malformed input to ingestion over gRPC and
// through the gateway's REST API: each gets a clear error naming the field
// (or the limit), nothing is logged for it, the service keeps serving and
// what was stored before is untouched.
func TestBadInput(t *testing.T) {
	s := newSuite(t)
	for _, name := range append(append([]string{}, services...), "gateway") {
		s.start(name)
	}
	ctx := t.Context()
	c := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))
	at := time.Now().UTC().Add(-time.Hour)
	good := workload(seed, 2, at)
	if _, _, err := sendBatch(ctx, c, good); err != nil {
		t.Fatal(err)
	}
	heads := func() string {
		info, err := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.service)).GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{Workspace: workspace})
		if err != nil {
			t.Fatalf("get log info: %v", err)
		}
		var b strings.Builder
		for _, p := range info.GetPartitions() {
			fmt.Fprintf(&b, "%d:%d ", p.GetPartition(), p.GetLastOffset())
		}
		return b.String()
	}
	before := heads()

	track := func(mod func(e *ingestionv1.Event)) []*ingestionv1.Event {
		e := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: "bad-1", UserId: "u", Event: "report_created", Timestamp: good[0].GetTimestamp()}
		mod(e)
		return []*ingestionv1.Event{e}
	}
	many := make([]*ingestionv1.Event, 2501)
	for i := range many {
		many[i] = &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: fmt.Sprintf("many-%d", i), UserId: "u", Event: "e"}
	}
	tests := []struct {
		name   string
		events []*ingestionv1.Event
		want   string // the field (or limit) the error must name
	}{
		{"message id too long", track(func(e *ingestionv1.Event) { e.MessageId = strings.Repeat("m", 101) }), "events[0].message_id"},
		{"no user", track(func(e *ingestionv1.Event) { e.UserId = "" }), "events[0]"},
		{"track without event", track(func(e *ingestionv1.Event) { e.Event = "" }), "events[0].event"},
		{"unknown reserved name", track(func(e *ingestionv1.Event) { e.Event = "crm.mq1" }), "events[0].event"},
		{"wrong-typed reserved property", track(func(e *ingestionv1.Event) {
			e.Event, e.Properties = "crm.mql", fields(map[string]any{"score": "high"})
		}), "events[0].properties.score"},
		{"nested too deep", track(func(e *ingestionv1.Event) { e.Properties = nested(40) }), "events[0].properties"},
		{"string too long", track(func(e *ingestionv1.Event) { e.Properties = fields(map[string]any{"s": strings.Repeat("x", 9000)}) }), "events[0].properties"},
		{"not a finite number", track(func(e *ingestionv1.Event) {
			e.Properties = &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.Inf(1))}}
		}), "events[0].properties"},
		{"too many events", many, "events"},
		{"event too large", track(func(e *ingestionv1.Event) {
			e.Properties = fields(map[string]any{"a": strings.Repeat("x", 8000), "b": strings.Repeat("x", 8000), "c": strings.Repeat("x", 8000), "d": strings.Repeat("x", 8000), "e": strings.Repeat("x", 8000)})
		}), "events[0]"},
	}
	for _, tc := range tests {
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := c.Ingest(cctx, &ingestionv1.IngestRequest{Events: tc.events})
			if err != nil {
				st := status.Convert(err)
				if st.Code() != codes.InvalidArgument && st.Code() != codes.ResourceExhausted {
					t.Fatalf("code %v (%v), want InvalidArgument or ResourceExhausted", st.Code(), err)
				}
				if !strings.Contains(st.Message(), tc.want) {
					t.Errorf("message %q does not name %q", st.Message(), tc.want)
				}
				checkNoLeak(t, st.Message(), nil)
				return
			}
			if resp.GetAccepted() != 0 || resp.GetRejected() != int32(len(tc.events)) {
				t.Fatalf("accepted %d, rejected %d of %d, want every event rejected", resp.GetAccepted(), resp.GetRejected(), len(tc.events))
			}
			r := resp.GetResults()[0]
			if r.GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_REJECTED || !strings.HasPrefix(r.GetField(), tc.want) || r.GetReason() == "" {
				t.Errorf("result %v field %q reason %q, want rejected naming %q with a reason", r.GetStatus(), r.GetField(), r.GetReason(), tc.want)
			}
			checkNoLeak(t, r.GetField()+": "+r.GetReason(), nil)
		})
	}

	// A message beyond the gRPC receive limit is refused by the transport.
	t.Run("gRPC message too large", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := c.Ingest(cctx, &ingestionv1.IngestRequest{Events: track(func(e *ingestionv1.Event) {
			e.Properties = fields(map[string]any{"blob": strings.Repeat("x", 8<<20)})
		})})
		if code := status.Code(err); code != codes.ResourceExhausted && code != codes.InvalidArgument {
			t.Fatalf("code %v (%v), want ResourceExhausted or InvalidArgument", code, err)
		}
	})

	rest := []struct {
		name, body string
		want       int
		// wantField, for a 200 answer, is the field every per-event
		// rejection must name.
		wantField string
	}{
		{"malformed JSON", `{"events": [`, http.StatusBadRequest, ""},
		{"wrong-typed field", `{"events": "not a list"}`, http.StatusBadRequest, ""},
		// The gateway discards unknown JSON values (forward compatibility),
		// so an unknown enum name arrives unset and the event is rejected.
		{"unknown enum", `{"events": [{"type": "EVENT_TYPE_BOGUS", "userId": "u"}]}`, http.StatusOK, "events[0].type"},
		{"body too large", `{"events": [{"type": "EVENT_TYPE_TRACK", "userId": "u", "event": "e", "properties": {"x": "` + strings.Repeat("x", 2<<20) + `"}}]}`, http.StatusRequestEntityTooLarge, ""},
	}
	for _, tc := range rest {
		t.Run("REST "+tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			code, body := s.rest(t, cctx, http.MethodPost, "/v1/events:batch", s.keys.write, tc.body)
			if code != tc.want {
				t.Fatalf("status %d, want %d; body %.300s", code, tc.want, body)
			}
			checkNoLeak(t, string(body), []string{s.keys.write})
			if tc.wantField != "" {
				var r struct {
					Accepted int32 `json:"accepted"`
					Results  []struct {
						Status, Field string
					} `json:"results"`
				}
				if err := json.Unmarshal(body, &r); err != nil || r.Accepted != 0 || len(r.Results) == 0 {
					t.Fatalf("body %.300s (%v): want every event rejected", body, err)
				}
				for _, res := range r.Results {
					if res.Status != "EVENT_STATUS_REJECTED" || res.Field != tc.wantField {
						t.Errorf("result %s %q, want rejected naming %q", res.Status, res.Field, tc.wantField)
					}
				}
			}
		})
	}

	t.Run("config", func(t *testing.T) { testBadConfig(t, s) })

	if after := heads(); after != before {
		t.Errorf("log heads changed from %s to %s: bad input was stored", before, after)
	}
	if !s.ready(ctx, "ingestion") {
		t.Fatal("ingestion stopped serving after bad input")
	}
	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range good {
		if ids[e.GetMessageId()] != 1 {
			t.Errorf("stored event %s: %d copies after the bad input, want 1", e.GetMessageId(), ids[e.GetMessageId()])
		}
	}
}
