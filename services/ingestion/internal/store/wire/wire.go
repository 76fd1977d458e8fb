// Package wire sizes and encodes ingestion events by hand.
//
// The protobuf runtime sizes and marshals google.protobuf.Struct maps through
// reflection, allocating a copy of every map key on each pass, and the ingest
// path made four such passes per event (the request size, the event size, and
// the size and marshal of its log record). Profiles of BenchmarkIngestRPC put
// them at a quarter of the server's CPU. Event is a fixed message, so walking
// it directly is short and allocation-free.
//
// The output is the protobuf wire format of the same messages: proto.Unmarshal
// reads it back to a message proto.Equal to the input, and EventSize equals
// proto.Size. The tests hold both against the protobuf runtime.
package wire

import (
	"errors"
	"math"
	"unicode/utf8"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrInvalidUTF8 is returned for a string that is not valid UTF-8, which
// proto.Marshal refuses too (a consumer's proto.Unmarshal would fail on it).
// Requests decoded by gRPC never hold one.
var ErrInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// Field numbers of cairn.ingestion.v1.Event, LogRecord and IngestRequest.
const (
	evWorkspace         = 1
	evType              = 2
	evMessageID         = 3
	evUserID            = 4
	evAnonymousID       = 5
	evEvent             = 6
	evName              = 7
	evGroupID           = 8
	evPreviousID        = 9
	evProperties        = 10
	evTraits            = 11
	evContext           = 12
	evIntegrations      = 13
	evTimestamp         = 14
	evOriginalTimestamp = 15
	evSentAt            = 16
	evReceivedAt        = 17
	evAccountID         = 18
	evSource            = 19
	evFlags             = 20
	evReattributed      = 21

	recOffset    = 1
	recPartition = 2
	recEvent     = 3

	subRecords = 1
	subHead    = 2

	reqWorkspace = 1
	reqEvents    = 2
)

// Field numbers of the well-known types.
const (
	tsSeconds = 1
	tsNanos   = 2

	structFields = 1
	entryKey     = 1
	entryValue   = 2

	valNull   = 1
	valNumber = 2
	valString = 3
	valBool   = 4
	valStruct = 5
	valList   = 6

	listValues = 1
)

// handled lists, for every message this package sizes or encodes by hand,
// the field numbers the code here knows about. TestHandledFields fails when
// a message's descriptor has a field missing here (the encoder would drop
// it without any other test noticing): teach the code the field, then add
// it.
var handled = map[protoreflect.FullName][]protowire.Number{
	"cairn.ingestion.v1.Event": {
		evWorkspace, evType, evMessageID, evUserID, evAnonymousID, evEvent, evName, evGroupID, evPreviousID,
		evProperties, evTraits, evContext, evIntegrations, evTimestamp, evOriginalTimestamp, evSentAt,
		evReceivedAt, evAccountID, evSource, evFlags, evReattributed,
	},
	// Only the event is written: offset and partition are unset in the
	// stored record (Subscribe fills them in) and tombstones are marshalled
	// by the protobuf runtime.
	"cairn.ingestion.v1.LogRecord":       {1, 2, recEvent, 4},
	"cairn.common.v1.Tombstone":          nil,
	"cairn.ingestion.v1.IngestRequest":   {reqWorkspace, reqEvents},
	"google.protobuf.Timestamp":          {tsSeconds, tsNanos},
	"google.protobuf.Struct":             {structFields},
	"google.protobuf.Struct.FieldsEntry": {entryKey, entryValue},
	"google.protobuf.Value":              {valNull, valNumber, valString, valBool, valStruct, valList},
	"google.protobuf.ListValue":          {listValues},
}

// RequestSize returns proto.Size(req) and, in sizes (reused when it has the
// capacity), proto.Size of each event, so that callers checking both limits
// walk every event once.
func RequestSize(req *ingestionv1.IngestRequest, sizes []int) (int, []int) {
	sizes = sizes[:0]
	if req == nil {
		return 0, sizes
	}
	n := sizeString(reqWorkspace, req.Workspace)
	for _, ev := range req.Events {
		s := EventSize(ev)
		sizes = append(sizes, s)
		n += protowire.SizeTag(reqEvents) + protowire.SizeBytes(s)
	}
	return n + len(req.ProtoReflect().GetUnknown()), sizes
}

// EventSize returns proto.Size(ev).
func EventSize(ev *ingestionv1.Event) int {
	if ev == nil {
		return 0
	}
	n := sizeString(evWorkspace, ev.Workspace)
	if ev.Type != 0 {
		n += protowire.SizeTag(evType) + protowire.SizeVarint(uint64(ev.Type))
	}
	n += sizeString(evMessageID, ev.MessageId)
	n += sizeString(evUserID, ev.UserId)
	n += sizeString(evAnonymousID, ev.AnonymousId)
	n += sizeString(evEvent, ev.Event)
	n += sizeString(evName, ev.Name)
	n += sizeString(evGroupID, ev.GroupId)
	n += sizeString(evPreviousID, ev.PreviousId)
	n += sizeStructField(evProperties, ev.Properties)
	n += sizeStructField(evTraits, ev.Traits)
	n += sizeStructField(evContext, ev.Context)
	n += sizeStructField(evIntegrations, ev.Integrations)
	n += sizeTimestampField(evTimestamp, ev.Timestamp)
	n += sizeTimestampField(evOriginalTimestamp, ev.OriginalTimestamp)
	n += sizeTimestampField(evSentAt, ev.SentAt)
	n += sizeTimestampField(evReceivedAt, ev.ReceivedAt)
	n += sizeString(evAccountID, ev.AccountId)
	n += sizeString(evSource, ev.Source)
	for _, f := range ev.Flags {
		n += protowire.SizeTag(evFlags) + protowire.SizeBytes(len(f))
	}
	if ev.Reattributed {
		n += protowire.SizeTag(evReattributed) + 1
	}
	return n + len(ev.ProtoReflect().GetUnknown())
}

// sizeString sizes a proto3 string field, which is omitted when empty.
func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func sizeStructField(num protowire.Number, s *structpb.Struct) int {
	if s == nil {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(sizeStruct(s))
}

func sizeTimestampField(num protowire.Number, t *timestamppb.Timestamp) int {
	if t == nil {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(sizeTimestamp(t))
}

func sizeTimestamp(t *timestamppb.Timestamp) int {
	n := 0
	if t.Seconds != 0 {
		n += protowire.SizeTag(tsSeconds) + protowire.SizeVarint(uint64(t.Seconds))
	}
	if t.Nanos != 0 {
		n += protowire.SizeTag(tsNanos) + protowire.SizeVarint(uint64(t.Nanos))
	}
	return n + len(t.ProtoReflect().GetUnknown())
}

func sizeStruct(s *structpb.Struct) int {
	if s == nil {
		return 0
	}
	n := 0
	for k, v := range s.Fields {
		// Map entries always carry both the key and the value, even empty.
		e := protowire.SizeTag(entryKey) + protowire.SizeBytes(len(k)) +
			protowire.SizeTag(entryValue) + protowire.SizeBytes(sizeValue(v))
		n += protowire.SizeTag(structFields) + protowire.SizeBytes(e)
	}
	return n + len(s.ProtoReflect().GetUnknown())
}

func sizeValue(v *structpb.Value) int {
	if v == nil {
		return 0
	}
	n := 0
	// A oneof member is encoded even when it holds its zero value; a typed
	// nil wrapper counts as unset, as in the protobuf runtime.
	switch k := v.Kind.(type) {
	case *structpb.Value_NullValue:
		if k != nil {
			n = protowire.SizeTag(valNull) + protowire.SizeVarint(uint64(k.NullValue))
		}
	case *structpb.Value_NumberValue:
		if k != nil {
			n = protowire.SizeTag(valNumber) + protowire.SizeFixed64()
		}
	case *structpb.Value_StringValue:
		if k != nil {
			n = protowire.SizeTag(valString) + protowire.SizeBytes(len(k.StringValue))
		}
	case *structpb.Value_BoolValue:
		if k != nil {
			n = protowire.SizeTag(valBool) + 1
		}
	case *structpb.Value_StructValue:
		if k != nil {
			n = protowire.SizeTag(valStruct) + protowire.SizeBytes(sizeStruct(k.StructValue))
		}
	case *structpb.Value_ListValue:
		if k != nil {
			n = protowire.SizeTag(valList) + protowire.SizeBytes(sizeList(k.ListValue))
		}
	}
	return n + len(v.ProtoReflect().GetUnknown())
}

func sizeList(l *structpb.ListValue) int {
	if l == nil {
		return 0
	}
	n := 0
	for _, v := range l.Values {
		n += protowire.SizeTag(listValues) + protowire.SizeBytes(sizeValue(v))
	}
	return n + len(l.ProtoReflect().GetUnknown())
}

// AppendLogRecord appends the encoding of LogRecord{Kind: Event{ev}} (offset
// and partition unset, as the log stores it) to b. Map entries come in Go's
// map order, which proto.Marshal does not fix either.
func AppendLogRecord(b []byte, ev *ingestionv1.Event) ([]byte, error) {
	b = protowire.AppendTag(b, recEvent, protowire.BytesType)
	b, start := openLen(b)
	b, err := appendEvent(b, ev)
	if err != nil {
		return nil, err
	}
	return closeLen(b, start), nil
}

// AppendSubscribed appends one entry of SubscribeResponse.records to b: a
// LogRecord as the log stores it (data, offset and partition unset) with its
// offset and partition added. The fields follow the stored ones, so the
// result decodes to the stored record with its position filled in, as
// store.Decode returns it.
func AppendSubscribed(b, data []byte, offset uint64, partition uint32) []byte {
	n := len(data) + protowire.SizeTag(recOffset) + protowire.SizeVarint(offset)
	if partition != 0 {
		n += protowire.SizeTag(recPartition) + protowire.SizeVarint(uint64(partition))
	}
	b = protowire.AppendTag(b, subRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = append(b, data...)
	b = protowire.AppendTag(b, recOffset, protowire.VarintType)
	b = protowire.AppendVarint(b, offset)
	if partition != 0 {
		b = protowire.AppendTag(b, recPartition, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(partition))
	}
	return b
}

// AppendSubscribeHead appends SubscribeResponse.head_offset to b.
func AppendSubscribeHead(b []byte, head uint64) []byte {
	if head == 0 {
		return b
	}
	b = protowire.AppendTag(b, subHead, protowire.VarintType)
	return protowire.AppendVarint(b, head)
}

// openLen appends a one-byte placeholder for the length of a message whose
// body follows and returns where the body starts.
func openLen(b []byte) ([]byte, int) {
	b = append(b, 0)
	return b, len(b)
}

// closeLen writes the length of the body that began at start into the
// placeholder before it, shifting the body when the length needs more than
// one byte. Encoding the body first and measuring it costs a short copy for
// large bodies instead of sizing every nested message once per level.
func closeLen(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	w := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, w-1)...)
	copy(b[start-1+w:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

func appendEvent(b []byte, ev *ingestionv1.Event) ([]byte, error) {
	if ev == nil {
		return b, nil
	}
	b, err := appendString(b, evWorkspace, ev.Workspace)
	if err != nil {
		return nil, err
	}
	if ev.Type != 0 {
		b = protowire.AppendTag(b, evType, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ev.Type))
	}
	for _, f := range [...]struct {
		num protowire.Number
		s   string
	}{
		{evMessageID, ev.MessageId},
		{evUserID, ev.UserId},
		{evAnonymousID, ev.AnonymousId},
		{evEvent, ev.Event},
		{evName, ev.Name},
		{evGroupID, ev.GroupId},
		{evPreviousID, ev.PreviousId},
	} {
		if b, err = appendString(b, f.num, f.s); err != nil {
			return nil, err
		}
	}
	for _, f := range [...]struct {
		num protowire.Number
		s   *structpb.Struct
	}{
		{evProperties, ev.Properties},
		{evTraits, ev.Traits},
		{evContext, ev.Context},
		{evIntegrations, ev.Integrations},
	} {
		if f.s == nil {
			continue
		}
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		var start int
		b, start = openLen(b)
		if b, err = appendStruct(b, f.s); err != nil {
			return nil, err
		}
		b = closeLen(b, start)
	}
	for _, f := range [...]struct {
		num protowire.Number
		t   *timestamppb.Timestamp
	}{
		{evTimestamp, ev.Timestamp},
		{evOriginalTimestamp, ev.OriginalTimestamp},
		{evSentAt, ev.SentAt},
		{evReceivedAt, ev.ReceivedAt},
	} {
		if f.t != nil {
			b = appendTimestamp(b, f.num, f.t)
		}
	}
	if b, err = appendString(b, evAccountID, ev.AccountId); err != nil {
		return nil, err
	}
	if b, err = appendString(b, evSource, ev.Source); err != nil {
		return nil, err
	}
	for _, f := range ev.Flags {
		if !utf8.ValidString(f) {
			return nil, ErrInvalidUTF8
		}
		b = protowire.AppendTag(b, evFlags, protowire.BytesType)
		b = protowire.AppendString(b, f)
	}
	if ev.Reattributed {
		b = protowire.AppendTag(b, evReattributed, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return append(b, ev.ProtoReflect().GetUnknown()...), nil
}

// appendString appends a proto3 string field, omitted when empty.
func appendString(b []byte, num protowire.Number, s string) ([]byte, error) {
	if s == "" {
		return b, nil
	}
	if !utf8.ValidString(s) {
		return nil, ErrInvalidUTF8
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s), nil
}

func appendTimestamp(b []byte, num protowire.Number, t *timestamppb.Timestamp) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeTimestamp(t)))
	if t.Seconds != 0 {
		b = protowire.AppendTag(b, tsSeconds, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t.Seconds))
	}
	if t.Nanos != 0 {
		b = protowire.AppendTag(b, tsNanos, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t.Nanos))
	}
	return append(b, t.ProtoReflect().GetUnknown()...)
}

// appendStruct appends the body of s.
func appendStruct(b []byte, s *structpb.Struct) ([]byte, error) {
	if s == nil {
		return b, nil
	}
	var err error
	for k, v := range s.Fields {
		if !utf8.ValidString(k) {
			return nil, ErrInvalidUTF8
		}
		b = protowire.AppendTag(b, structFields, protowire.BytesType)
		var entry, val int
		b, entry = openLen(b)
		b = protowire.AppendTag(b, entryKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, entryValue, protowire.BytesType)
		b, val = openLen(b)
		if b, err = appendValue(b, v); err != nil {
			return nil, err
		}
		b = closeLen(b, val)
		b = closeLen(b, entry)
	}
	return append(b, s.ProtoReflect().GetUnknown()...), nil
}

// appendValue appends the body of v.
func appendValue(b []byte, v *structpb.Value) ([]byte, error) {
	if v == nil {
		return b, nil
	}
	var err error
	switch k := v.Kind.(type) {
	case *structpb.Value_NullValue:
		if k != nil {
			b = protowire.AppendTag(b, valNull, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(k.NullValue))
		}
	case *structpb.Value_NumberValue:
		if k != nil {
			b = protowire.AppendTag(b, valNumber, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(k.NumberValue))
		}
	case *structpb.Value_StringValue:
		if k != nil {
			if !utf8.ValidString(k.StringValue) {
				return nil, ErrInvalidUTF8
			}
			b = protowire.AppendTag(b, valString, protowire.BytesType)
			b = protowire.AppendString(b, k.StringValue)
		}
	case *structpb.Value_BoolValue:
		if k != nil {
			b = protowire.AppendTag(b, valBool, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeBool(k.BoolValue))
		}
	case *structpb.Value_StructValue:
		if k != nil {
			b = protowire.AppendTag(b, valStruct, protowire.BytesType)
			var start int
			b, start = openLen(b)
			if b, err = appendStruct(b, k.StructValue); err != nil {
				return nil, err
			}
			b = closeLen(b, start)
		}
	case *structpb.Value_ListValue:
		if k != nil {
			b = protowire.AppendTag(b, valList, protowire.BytesType)
			var start int
			b, start = openLen(b)
			if b, err = appendList(b, k.ListValue); err != nil {
				return nil, err
			}
			b = closeLen(b, start)
		}
	}
	return append(b, v.ProtoReflect().GetUnknown()...), nil
}

func appendList(b []byte, l *structpb.ListValue) ([]byte, error) {
	if l == nil {
		return b, nil
	}
	var err error
	for _, v := range l.Values {
		b = protowire.AppendTag(b, listValues, protowire.BytesType)
		var start int
		b, start = openLen(b)
		if b, err = appendValue(b, v); err != nil {
			return nil, err
		}
		b = closeLen(b, start)
	}
	return append(b, l.ProtoReflect().GetUnknown()...), nil
}
