package validate

import (
	"math"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func props(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func track(name string, p map[string]any) *ingestionv1.Event {
	return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", Event: name, Properties: props(p)}
}

// nested returns an object nested n levels deep (the outer object is level 1).
func nested(n int) map[string]any {
	m := map[string]any{"leaf": 1}
	for i := 1; i < n; i++ {
		m = map[string]any{"k": m}
	}
	return m
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[strings.Repeat("k", 1+i%5)+string(rune('a'+i%26))+strings.Repeat("x", i/130)+string(rune('A'+i%7))] = i
	}
	for i := 0; len(m) < n; i++ {
		m["extra"+strings.Repeat("z", i)] = i
	}
	return m
}

func TestEvent(t *testing.T) {
	contract := map[string]any{"plan": "pro", "seats": 25, "arr": 30000,
		"contract_start": "2026-01-01T00:00:00Z", "contract_end": "2027-01-01T00:00:00Z"}
	with := func(base map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range base {
			out[kk] = vv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name       string
		ev         *ingestionv1.Event
		wantField  string // "-" means valid
		wantReason string // substring
		wantSource string
	}{
		{name: "plain product track", ev: track("report_created", map[string]any{"rows": 3}), wantField: "-", wantSource: "product"},
		{name: "identify with anonymous id", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, AnonymousId: "a"}, wantField: "-", wantSource: "product"},
		{name: "unspecified type", ev: &ingestionv1.Event{UserId: "u"}, wantField: "type", wantReason: "required"},
		{name: "unknown type", ev: &ingestionv1.Event{Type: 99, UserId: "u"}, wantField: "type", wantReason: "unknown"},
		{name: "no user", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE}, wantField: "user_id", wantReason: "anonymous_id"},
		{name: "track without event", ev: track("", nil), wantField: "event", wantReason: "required"},
		{name: "group without group id", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: "u"}, wantField: "group_id"},
		{name: "alias without previous id", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "u"}, wantField: "previous_id"},
		{name: "message id too long", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", MessageId: strings.Repeat("m", 101)},
			wantField: "message_id", wantReason: "longer than 100 characters"},
		{name: "message id at the limit", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", MessageId: strings.Repeat("é", 100)}, wantField: "-", wantSource: "product"},
		{name: "user id too long", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: strings.Repeat("u", 257)}, wantField: "user_id"},
		{name: "event too big", ev: track("x", map[string]any{"blob": strings.Repeat("b", 33<<10)}), wantField: "", wantReason: "bytes"},
		{name: "depth 16 ok", ev: track("x", nested(16)), wantField: "-", wantSource: "product"},
		{name: "depth 17 refused", ev: track("x", nested(17)), wantField: "properties" + strings.Repeat(".k", 16), wantReason: "deeper than 16"},
		{name: "list counts as a level", ev: track("x", map[string]any{"k": map[string]any{"l": []any{[]any{1}}}}), wantField: "-", wantSource: "product"},
		{name: "too many keys", ev: track("x", manyKeys(257)), wantField: "properties", wantReason: "257 keys"},
		{name: "long string", ev: track("x", map[string]any{"s": strings.Repeat("s", 8193)}), wantField: "properties.s", wantReason: "string longer"},
		{name: "list item string", ev: track("x", map[string]any{"l": []any{"ok", strings.Repeat("s", 8193)}}), wantField: "properties.l[1]"},
		{name: "NaN", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u",
			Traits: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.NaN())}}}, wantField: "traits.x", wantReason: "finite"},
		{name: "context group id not a string", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", Context: props(map[string]any{"groupId": 5})}, wantField: "context.groupId"},
		{name: "invalid timestamp", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", SentAt: &timestamppb.Timestamp{Nanos: -1}}, wantField: "sent_at"},
		// Reserved events.
		{name: "contract updated", ev: track("billing.contract_updated", contract), wantField: "-", wantSource: "billing"},
		{name: "contract without seats", ev: track("billing.contract_updated", with(contract, "seats", nil)), wantField: "properties.seats", wantReason: "required"},
		{name: "contract zero seats", ev: track("billing.contract_updated", with(contract, "seats", 0)), wantField: "properties.seats", wantReason: "> 0"},
		{name: "contract negative arr", ev: track("billing.contract_updated", with(contract, "arr", -1)), wantField: "properties.arr", wantReason: ">= 0"},
		{name: "contract arr as string", ev: track("billing.contract_updated", with(contract, "arr", "100")), wantField: "properties.arr", wantReason: "number"},
		{name: "contract bad date", ev: track("billing.contract_updated", with(contract, "contract_end", "2027-01-01")), wantField: "properties.contract_end", wantReason: "RFC 3339"},
		{name: "contract ends before start", ev: track("billing.contract_updated", with(contract, "contract_end", "2025-01-01T00:00:00Z")), wantField: "properties.contract_end", wantReason: "after"},
		{name: "contract plan empty", ev: track("billing.contract_updated", with(contract, "plan", "")), wantField: "properties.plan"},
		{name: "nps 10", ev: track("survey.nps", map[string]any{"score": 10}), wantField: "-", wantSource: "survey"},
		{name: "nps 11", ev: track("survey.nps", map[string]any{"score": 11}), wantField: "properties.score", wantReason: "<= 10"},
		{name: "nps fraction", ev: track("survey.nps", map[string]any{"score": 7.5}), wantField: "properties.score", wantReason: "integer"},
		{name: "nps null score", ev: track("survey.nps", map[string]any{"score": nil}), wantField: "properties.score", wantReason: "required"},
		{name: "ticket p2", ev: track("support.ticket_opened", map[string]any{"ticket_id": "T-1", "priority": "p2"}), wantField: "-", wantSource: "support"},
		{name: "ticket p5", ev: track("support.ticket_opened", map[string]any{"ticket_id": "T-1", "priority": "p5"}), wantField: "properties.priority", wantReason: "p1, p2, p3, p4"},
		{name: "ticket without id", ev: track("support.ticket_opened", map[string]any{"priority": "p1"}), wantField: "properties.ticket_id"},
		{name: "mql without properties", ev: track("crm.mql", nil), wantField: "-", wantSource: "crm"},
		{name: "qbr", ev: track("meeting.qbr_held", map[string]any{"attendees": 4}), wantField: "-", wantSource: "meeting"},
		{name: "unknown reserved name", ev: track("crm.mq1", nil), wantField: "event", wantReason: "reserved \"crm\" namespace"},
		{name: "other dotted names are product", ev: track("app.opened", nil), wantField: "-", wantSource: "product"},
		{name: "page named like crm is product", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", Name: "crm.mql"}, wantField: "-", wantSource: "product"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := proto.Clone(tc.ev).(*ingestionv1.Event)
			err := Event(ev, DefaultLimits(), now)
			if tc.wantField == "-" {
				if err != nil {
					t.Fatalf("Event() = %v, want valid", err)
				}
				if ev.GetSource() != tc.wantSource {
					t.Errorf("source = %q, want %q", ev.GetSource(), tc.wantSource)
				}
				return
			}
			if err == nil {
				t.Fatalf("Event() = nil, want error on %q", tc.wantField)
			}
			if err.Field != tc.wantField || !strings.Contains(err.Reason, tc.wantReason) {
				t.Errorf("Event() = %q, want field %q with reason containing %q", err, tc.wantField, tc.wantReason)
			}
		})
	}
}

func TestTimestamps(t *testing.T) {
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	tests := []struct {
		name                      string
		timestamp, original, sent *timestamppb.Timestamp
		wantTime                  time.Time
		wantOriginal              *timestamppb.Timestamp
		wantFlags                 []string
	}{
		{name: "nothing sent: arrival time", wantTime: now},
		{name: "device clock 1h behind is corrected",
			original: at(-time.Hour - 5*time.Second), sent: at(-time.Hour),
			wantTime: now.Add(-5 * time.Second), wantOriginal: at(-time.Hour - 5*time.Second)},
		{name: "device clock 2h ahead is corrected, not flagged",
			original: at(2*time.Hour - 30*time.Second), sent: at(2 * time.Hour),
			wantTime: now.Add(-30 * time.Second), wantOriginal: at(2*time.Hour - 30*time.Second)},
		{name: "explicit timestamp is the original time",
			timestamp: at(-time.Minute), sent: at(time.Minute),
			wantTime: now.Add(-2 * time.Minute), wantOriginal: at(-time.Minute)},
		{name: "historical import without sentAt is kept",
			timestamp: at(-365 * 24 * time.Hour),
			wantTime:  now.Add(-365 * 24 * time.Hour), wantOriginal: at(-365 * 24 * time.Hour)},
		{name: "future within skew is not flagged",
			original: at(9 * time.Minute), wantTime: now.Add(9 * time.Minute), wantOriginal: at(9 * time.Minute)},
		{name: "future beyond skew is flagged, not rewritten",
			original: at(11 * time.Minute), wantTime: now.Add(11 * time.Minute), wantOriginal: at(11 * time.Minute),
			wantFlags: []string{FlagFutureTimestamp}},
		{name: "sentAt before originalTimestamp pushes into the future",
			original: at(0), sent: at(-time.Hour), wantTime: now.Add(time.Hour), wantOriginal: at(0),
			wantFlags: []string{FlagFutureTimestamp}},
		{name: "sentAt alone does not move the time", sent: at(-time.Hour), wantTime: now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u",
				Timestamp: tc.timestamp, OriginalTimestamp: tc.original, SentAt: tc.sent,
				ReceivedAt: at(-48 * time.Hour), Flags: []string{"client_flag"}}
			if err := Event(ev, DefaultLimits(), now); err != nil {
				t.Fatalf("Event() = %v", err)
			}
			if got := ev.GetTimestamp().AsTime(); !got.Equal(tc.wantTime) {
				t.Errorf("timestamp = %v, want %v", got, tc.wantTime)
			}
			if !ev.GetReceivedAt().AsTime().Equal(now) {
				t.Errorf("received_at = %v, want the arrival time %v", ev.GetReceivedAt().AsTime(), now)
			}
			if !proto.Equal(ev.GetOriginalTimestamp(), tc.wantOriginal) {
				t.Errorf("original_timestamp = %v, want %v", ev.GetOriginalTimestamp(), tc.wantOriginal)
			}
			if !proto.Equal(ev.GetSentAt(), tc.sent) {
				t.Errorf("sent_at = %v, want it kept as %v", ev.GetSentAt(), tc.sent)
			}
			if strings.Join(ev.GetFlags(), ",") != strings.Join(tc.wantFlags, ",") {
				t.Errorf("flags = %v, want %v", ev.GetFlags(), tc.wantFlags)
			}
		})
	}
}

func TestEventClearsOutputFields(t *testing.T) {
	ev := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", AccountId: "spoofed", Reattributed: true, Source: "crm"}
	if err := Event(ev, DefaultLimits(), now); err != nil {
		t.Fatal(err)
	}
	if ev.GetAccountId() != "" || ev.GetReattributed() || ev.GetSource() != SourceProduct {
		t.Errorf("output-only fields kept from the client: %v", ev)
	}
}

func TestBatch(t *testing.T) {
	small := DefaultLimits()
	small.MaxBatchEvents = 2
	small.MaxBatchBytes = 200
	ev := func() *ingestionv1.Event { return track("x", nil) }
	tests := []struct {
		name string
		req  *ingestionv1.IngestRequest
		want string
	}{
		{"ok", &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{ev(), ev()}}, ""},
		{"too many", &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{ev(), ev(), ev()}}, "events: 3 events, more than the 2 allowed per batch"},
		{"too big", &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{track(strings.Repeat("x", 190), nil)}}, "more than the 200 allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Batch(len(tc.req.GetEvents()), proto.Size(tc.req), small)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Batch() = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || err.Field != "events"):
				t.Errorf("Batch() = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzEvent feeds arbitrary protobuf bytes through decoding and validation:
// nothing may panic and every rejection must name a field or the event.
func FuzzEvent(f *testing.F) {
	for _, ev := range []*ingestionv1.Event{
		track("billing.contract_updated", map[string]any{"plan": "pro", "seats": 2, "arr": 1,
			"contract_start": "2026-01-01T00:00:00Z", "contract_end": "2027-01-01T00:00:00Z"}),
		track("survey.nps", map[string]any{"score": 3}),
		{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: "u", GroupId: "g", SentAt: timestamppb.New(now), OriginalTimestamp: timestamppb.New(now.Add(-time.Hour))},
		{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, AnonymousId: "a", Traits: props(nested(20))},
	} {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := &ingestionv1.Event{}
		if err := proto.Unmarshal(data, ev); err != nil {
			return
		}
		err := Event(ev, DefaultLimits(), now)
		if err == nil {
			if ev.GetTimestamp() == nil || ev.GetReceivedAt() == nil || ev.GetSource() == "" {
				t.Fatalf("valid event lacks derived fields: %v", ev)
			}
			return
		}
		if err.Reason == "" {
			t.Fatalf("rejection without a reason: %+v", err)
		}
		if err.Field == "" && !strings.Contains(err.Reason, "bytes") {
			t.Fatalf("rejection %q names no field", err)
		}
	})
}
