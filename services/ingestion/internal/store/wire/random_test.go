package wire

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/store/codectest"
)

// gen builds random messages of every kind this package encodes, from a
// seeded generator so that a failure reproduces.
type gen struct{ r *rand.Rand }

func (g gen) chance(n int) bool { return g.r.IntN(n) == 0 }

func (g gen) str() string { return codectest.String(g.r) }

// unknown sets a random unknown field on m now and then, as a newer client
// would send it.
func (g gen) unknown(m proto.Message) { codectest.Unknown(g.r, m.ProtoReflect()) }

func (g gen) timestamp() *timestamppb.Timestamp {
	if g.chance(6) {
		return nil
	}
	t := &timestamppb.Timestamp{}
	if !g.chance(5) {
		t.Seconds = g.r.Int64N(1<<40) - 1<<39 // before and after 1970
	}
	if !g.chance(5) {
		t.Nanos = g.r.Int32N(2e9) - 1e9
	}
	g.unknown(t)
	return t
}

func (g gen) number() float64 {
	switch g.r.IntN(6) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*g.r.IntN(2))
	case 2:
		return 0
	default:
		return g.r.NormFloat64() * 1e6
	}
}

// value is a random Value of any kind, nested up to depth.
func (g gen) value(depth int) *structpb.Value {
	v := &structpb.Value{}
	kinds := 7
	if depth <= 0 {
		kinds = 5 // no nested struct or list
	}
	switch g.r.IntN(kinds) {
	case 0:
		v.Kind = &structpb.Value_NullValue{}
	case 1:
		v.Kind = &structpb.Value_NumberValue{NumberValue: g.number()}
	case 2:
		v.Kind = &structpb.Value_StringValue{StringValue: g.str()}
	case 3:
		v.Kind = &structpb.Value_BoolValue{BoolValue: g.chance(2)}
	case 4:
		// No kind set: an empty Value.
	case 5:
		v.Kind = &structpb.Value_StructValue{StructValue: g.structure(depth - 1)}
	default:
		l := &structpb.ListValue{}
		for range g.r.IntN(4) {
			l.Values = append(l.Values, g.value(depth-1))
		}
		g.unknown(l)
		v.Kind = &structpb.Value_ListValue{ListValue: l}
	}
	g.unknown(v)
	return v
}

func (g gen) structure(depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for range g.r.IntN(5) {
		s.Fields[g.str()] = g.value(depth)
	}
	g.unknown(s)
	return s
}

func (g gen) optStruct() *structpb.Struct {
	if g.chance(5) {
		return nil
	}
	return g.structure(3)
}

// event is a random event; every field is set in most events.
func (g gen) event() *ingestionv1.Event {
	ev := &ingestionv1.Event{
		Workspace: g.str(), Type: ingestionv1.EventType(g.r.IntN(8) - 1), MessageId: g.str(), UserId: g.str(),
		AnonymousId: g.str(), Event: g.str(), Name: g.str(), GroupId: g.str(), PreviousId: g.str(),
		Properties: g.optStruct(), Traits: g.optStruct(), Context: g.optStruct(), Integrations: g.optStruct(),
		Timestamp: g.timestamp(), OriginalTimestamp: g.timestamp(), SentAt: g.timestamp(), ReceivedAt: g.timestamp(),
		AccountId: g.str(), Source: g.str(), Reattributed: !g.chance(3),
	}
	for range g.r.IntN(4) {
		ev.Flags = append(ev.Flags, g.str())
	}
	g.unknown(ev)
	return ev
}

// TestRandomEventsMatchProto holds EventSize, RequestSize and
// AppendLogRecord against the protobuf runtime on random messages that set
// every field (checked below), including unknown fields.
func TestRandomEventsMatchProto(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(20261207, 1))}
	set := map[protoreflect.Name]bool{}
	for i := range 3000 {
		ev := g.event()
		ev.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			set[f.Name()] = true
			return true
		})
		if got, want := EventSize(ev), proto.Size(ev); got != want {
			t.Fatalf("event %d: EventSize = %d, proto.Size = %d\n%v", i, got, want, ev)
		}
		prefix := []byte{0xca, 0x1e}
		b, err := AppendLogRecord(prefix, ev)
		if err != nil {
			t.Fatalf("event %d: AppendLogRecord() = %v", i, err)
		}
		want := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: ev}}
		if len(b)-len(prefix) != proto.Size(want) {
			t.Fatalf("event %d: encoded %d bytes, proto.Size = %d", i, len(b)-len(prefix), proto.Size(want))
		}
		var got ingestionv1.LogRecord
		if err := proto.Unmarshal(b[len(prefix):], &got); err != nil {
			t.Fatalf("event %d: proto.Unmarshal() = %v", i, err)
		}
		if !proto.Equal(&got, want) {
			t.Fatalf("event %d: round trip differs:\n got %v\nwant %v", i, &got, want)
		}
	}
	fields := (&ingestionv1.Event{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); !set[f.Name()] {
			t.Errorf("no random event set %s: the generator misses a field", f.Name())
		}
	}

	for i := range 200 {
		req := &ingestionv1.IngestRequest{Workspace: g.str()}
		for range g.r.IntN(6) {
			ev := g.event()
			if g.chance(10) {
				ev = nil
			}
			req.Events = append(req.Events, ev)
		}
		g.unknown(req)
		got, sizes := RequestSize(req, nil)
		if want := proto.Size(req); got != want {
			t.Fatalf("request %d: RequestSize = %d, proto.Size = %d", i, got, want)
		}
		for j, ev := range req.Events {
			if sizes[j] != proto.Size(ev) {
				t.Fatalf("request %d: sizes[%d] = %d, proto.Size = %d", i, j, sizes[j], proto.Size(ev))
			}
		}
	}
}

// TestHandledFields fails when a message this package encodes gains a field
// that handled (next to the encoder) does not list.
func TestHandledFields(t *testing.T) {
	codectest.CheckFields(t, handled, &ingestionv1.LogRecord{}, &ingestionv1.IngestRequest{})
}
