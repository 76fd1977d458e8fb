package wire

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unknown is a field number no message here defines, as a newer client
// would send it.
func unknown(num protowire.Number, v string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func events(t testing.TB) map[string]*ingestionv1.Event {
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 123456789, time.UTC)
	full := &ingestionv1.Event{
		Workspace: "w", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: "m-1", UserId: "u", AnonymousId: "a",
		Event: "report_created", Name: "n", GroupId: "g", PreviousId: "p",
		Properties: mustStruct(t, map[string]any{"plan": "pro", "rows": 12, "ok": true, "none": nil,
			"nested": map[string]any{"list": []any{1, "two", nil, false, map[string]any{"deep": -1.5}, []any{}}}, "": ""}),
		Traits:       mustStruct(t, map[string]any{}),
		Context:      mustStruct(t, map[string]any{"groupId": "acct-1"}),
		Integrations: &structpb.Struct{},
		Timestamp:    timestamppb.New(t0), OriginalTimestamp: timestamppb.New(t0.Add(-time.Hour)),
		SentAt: &timestamppb.Timestamp{}, ReceivedAt: timestamppb.New(time.Unix(-5, -7)),
		AccountId: "acct-1", Source: "product", Flags: []string{"future_timestamp", ""}, Reattributed: true,
	}
	withUnknown := proto.Clone(full).(*ingestionv1.Event)
	withUnknown.ProtoReflect().SetUnknown(unknown(99, "event"))
	withUnknown.GetProperties().ProtoReflect().SetUnknown(unknown(7, "struct"))
	withUnknown.GetProperties().GetFields()["plan"].ProtoReflect().SetUnknown(unknown(9, "value"))
	withUnknown.GetTimestamp().ProtoReflect().SetUnknown(unknown(3, "ts"))
	list := withUnknown.GetProperties().GetFields()["nested"].GetStructValue().GetFields()["list"].GetListValue()
	list.ProtoReflect().SetUnknown(unknown(2, "list"))

	big := map[string]any{}
	for i := range 300 {
		big[strings.Repeat("k", i+1)] = strings.Repeat("v", 100)
	}
	return map[string]*ingestionv1.Event{
		"empty":        {},
		"minimal":      {Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u"},
		"full":         full,
		"unknown":      withUnknown,
		"negative":     {Type: ingestionv1.EventType(-3), Timestamp: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}},
		"nil entries":  {Properties: &structpb.Struct{Fields: map[string]*structpb.Value{"nil": nil, "unset": {}}}, Context: &structpb.Struct{Fields: map[string]*structpb.Value{"l": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{nil, {}}})}}},
		"nil messages": {Properties: &structpb.Struct{Fields: map[string]*structpb.Value{"s": {Kind: &structpb.Value_StructValue{}}, "l": {Kind: &structpb.Value_ListValue{}}}}},
		"special":      {Properties: mustStruct(t, map[string]any{"nan": math.NaN(), "inf": math.Inf(-1), "zero": math.Copysign(0, -1), "utf": "héllo ☃"})},
		"big":          {MessageId: "big", Properties: mustStruct(t, big)},
		"long string":  {Event: strings.Repeat("x", 20000)},
	}
}

func TestEventSizeMatchesProto(t *testing.T) {
	for name, ev := range events(t) {
		t.Run(name, func(t *testing.T) {
			if got, want := EventSize(ev), proto.Size(ev); got != want {
				t.Fatalf("EventSize = %d, proto.Size = %d", got, want)
			}
		})
	}
	if EventSize(nil) != 0 {
		t.Fatal("EventSize(nil) != 0")
	}
}

func TestRequestSizeMatchesProto(t *testing.T) {
	var evs []*ingestionv1.Event
	for _, ev := range events(t) {
		evs = append(evs, ev)
	}
	evs = append(evs, nil)
	req := &ingestionv1.IngestRequest{Workspace: "w", Events: evs}
	req.ProtoReflect().SetUnknown(unknown(50, "req"))
	got, sizes := RequestSize(req, make([]int, 0, 2))
	if want := proto.Size(req); got != want {
		t.Fatalf("RequestSize = %d, proto.Size = %d", got, want)
	}
	if len(sizes) != len(evs) {
		t.Fatalf("%d sizes for %d events", len(sizes), len(evs))
	}
	for i, ev := range evs {
		if sizes[i] != proto.Size(ev) {
			t.Errorf("sizes[%d] = %d, proto.Size = %d", i, sizes[i], proto.Size(ev))
		}
	}
	if n, s := RequestSize(nil, sizes); n != 0 || len(s) != 0 {
		t.Fatalf("RequestSize(nil) = %d, %v", n, s)
	}
}

func TestAppendLogRecordRoundTrips(t *testing.T) {
	for name, ev := range events(t) {
		t.Run(name, func(t *testing.T) {
			prefix := []byte("keep")
			b, err := AppendLogRecord(prefix, ev)
			if err != nil {
				t.Fatal(err)
			}
			if string(b[:4]) != "keep" {
				t.Fatal("AppendLogRecord overwrote the prefix")
			}
			want := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: ev}}
			if len(b)-4 != proto.Size(want) {
				t.Fatalf("encoded %d bytes, proto.Size = %d", len(b)-4, proto.Size(want))
			}
			var got ingestionv1.LogRecord
			if err := proto.Unmarshal(b[4:], &got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got, want) {
				t.Fatalf("round trip differs:\n got %v\nwant %v", &got, want)
			}
		})
	}
}

func TestAppendLogRecordRefusesInvalidUTF8(t *testing.T) {
	bad := "\xff"
	for name, ev := range map[string]*ingestionv1.Event{
		"field":  {UserId: bad},
		"flag":   {Flags: []string{bad}},
		"key":    {Properties: &structpb.Struct{Fields: map[string]*structpb.Value{bad: structpb.NewNullValue()}}},
		"value":  {Context: &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue(bad)}}},
		"nested": {Traits: &structpb.Struct{Fields: map[string]*structpb.Value{"l": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue(bad)}})}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := proto.Marshal(ev); err == nil {
				t.Fatal("proto.Marshal accepted the event; the test is wrong")
			}
			if _, err := AppendLogRecord(nil, ev); !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("AppendLogRecord() = %v, want ErrInvalidUTF8", err)
			}
		})
	}
}

// TestTypedNilOneofIsUnset checks that a oneof wrapper held as a typed nil
// pointer is treated as unset, as the protobuf runtime does, not
// dereferenced.
func TestTypedNilOneofIsUnset(t *testing.T) {
	ev := &ingestionv1.Event{Properties: &structpb.Struct{Fields: map[string]*structpb.Value{
		"a": {Kind: (*structpb.Value_StringValue)(nil)}, "b": {Kind: (*structpb.Value_StructValue)(nil)},
		"c": {Kind: (*structpb.Value_ListValue)(nil)}, "d": {Kind: (*structpb.Value_NumberValue)(nil)},
		"e": {Kind: (*structpb.Value_BoolValue)(nil)}, "f": {Kind: (*structpb.Value_NullValue)(nil)},
	}}}
	if got, want := EventSize(ev), proto.Size(ev); got != want {
		t.Fatalf("EventSize = %d, proto.Size = %d", got, want)
	}
	b, err := AppendLogRecord(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := proto.Size(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: ev}}); len(b) != want {
		t.Fatalf("encoded %d bytes, proto.Size = %d", len(b), want)
	}
}

// FuzzEvent holds EventSize and AppendLogRecord against the protobuf runtime
// for any event a client can send.
func FuzzEvent(f *testing.F) {
	for _, ev := range events(f) {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := &ingestionv1.Event{}
		if proto.Unmarshal(data, ev) != nil {
			return
		}
		if got, want := EventSize(ev), proto.Size(ev); got != want {
			t.Fatalf("EventSize = %d, proto.Size = %d", got, want)
		}
		b, err := AppendLogRecord(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		var got ingestionv1.LogRecord
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.GetEvent(), ev) {
			t.Fatalf("round trip differs:\n got %v\nwant %v", got.GetEvent(), ev)
		}
	})
}

// BenchmarkAppendLogRecord compares the hand encoder with proto.Marshal on
// a typical tracked event.
func BenchmarkAppendLogRecord(b *testing.B) {
	ev := &ingestionv1.Event{
		Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: "m-123-45", UserId: "user-17", Event: "report_created",
		Properties: mustStruct(b, map[string]any{"plan": "pro", "rows": 12, "path": "/reports/new"}),
		Context:    mustStruct(b, map[string]any{"groupId": "acct-3"}),
		Timestamp:  timestamppb.Now(), OriginalTimestamp: timestamppb.Now(), ReceivedAt: timestamppb.Now(),
		Workspace: "w", AccountId: "acct-3", Source: "product",
	}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			var err error
			if buf, err = AppendLogRecord(buf[:0], ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: ev}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("size/wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EventSize(ev)
		}
	})
	b.Run("size/proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			proto.Size(ev)
		}
	})
}

// TestKnowsEveryField fails when a message this package encodes by hand
// gains, loses or changes a field, which the encoder would otherwise drop or
// mis-encode without any other test noticing: update wire.go with the proto.
func TestKnowsEveryField(t *testing.T) {
	tests := []struct {
		msg  proto.Message
		want map[protowire.Number]string // number -> name and kind
	}{
		{&ingestionv1.Event{}, map[protowire.Number]string{
			evWorkspace: "workspace string", evType: "type enum", evMessageID: "message_id string",
			evUserID: "user_id string", evAnonymousID: "anonymous_id string", evEvent: "event string",
			evName: "name string", evGroupID: "group_id string", evPreviousID: "previous_id string",
			evProperties: "properties message", evTraits: "traits message", evContext: "context message",
			evIntegrations: "integrations message", evTimestamp: "timestamp message",
			evOriginalTimestamp: "original_timestamp message", evSentAt: "sent_at message",
			evReceivedAt: "received_at message", evAccountID: "account_id string", evSource: "source string",
			evFlags: "flags repeated string", evReattributed: "reattributed bool",
		}},
		{&ingestionv1.LogRecord{}, map[protowire.Number]string{
			1: "offset uint64", 2: "partition uint32", recEvent: "event message", 4: "tombstone message",
		}},
		{&ingestionv1.IngestRequest{}, map[protowire.Number]string{reqWorkspace: "workspace string", reqEvents: "events repeated message"}},
		{&timestamppb.Timestamp{}, map[protowire.Number]string{tsSeconds: "seconds int64", tsNanos: "nanos int32"}},
		{&structpb.Struct{}, map[protowire.Number]string{structFields: "fields repeated message"}},
		{&structpb.Value{}, map[protowire.Number]string{
			valNull: "null_value enum", valNumber: "number_value double", valString: "string_value string",
			valBool: "bool_value bool", valStruct: "struct_value message", valList: "list_value message",
		}},
		{&structpb.ListValue{}, map[protowire.Number]string{listValues: "values repeated message"}},
	}
	for _, tc := range tests {
		fields := tc.msg.ProtoReflect().Descriptor().Fields()
		got := map[protowire.Number]string{}
		for i := range fields.Len() {
			f := fields.Get(i)
			desc := string(f.Name()) + " "
			if f.IsList() || f.IsMap() {
				desc += "repeated "
			}
			desc += f.Kind().String()
			got[f.Number()] = desc
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s fields changed:\n got %v\nwant %v", tc.msg.ProtoReflect().Descriptor().FullName(), got, tc.want)
		}
	}
}

// TestSubscribeResponseMatchesProto holds the hand-built SubscribeResponse
// (stored records plus their positions) to what the protobuf runtime reads
// back from a SubscribeResponse of the decoded records.
func TestSubscribeResponseMatchesProto(t *testing.T) {
	evs := events(t)
	tests := []struct {
		name      string
		partition uint32
		head      uint64
		names     []string
	}{
		{name: "no records, head only", partition: 3, head: 42},
		{name: "partition zero", partition: 0, head: 7, names: []string{"full"}},
		{name: "several records", partition: 5, head: 1 << 40, names: []string{"full", "minimal", "unknown", "big"}},
		{name: "head zero", partition: 1, names: []string{"full"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := &ingestionv1.SubscribeResponse{HeadOffset: tc.head}
			var got []byte
			for i, n := range tc.names {
				ev, ok := evs[n]
				if !ok {
					t.Fatalf("no event %q in the fixtures", n)
				}
				stored, err := AppendLogRecord(nil, ev)
				if err != nil {
					t.Fatal(err)
				}
				off := uint64(300 + i)
				got = AppendSubscribed(got, stored, off, tc.partition)
				want.Records = append(want.Records, &ingestionv1.LogRecord{
					Offset: off, Partition: tc.partition, Kind: &ingestionv1.LogRecord_Event{Event: ev},
				})
			}
			got = AppendSubscribeHead(got, tc.head)
			var dec ingestionv1.SubscribeResponse
			if err := proto.Unmarshal(got, &dec); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !proto.Equal(&dec, want) {
				t.Errorf("decoded %v\nwant %v", &dec, want)
			}
		})
	}
}
