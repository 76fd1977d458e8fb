package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
)

const decodeService = "cairn.test.v1.DecodeService"

// decodeDesc has one unary and one server-streaming method taking an
// IngestRequest (strings, repeated messages, Structs); both count the
// requests that reach them, which must be none of the malformed ones.
func decodeDesc(reached *int) grpc.ServiceDesc {
	return grpc.ServiceDesc{
		ServiceName: decodeService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Ingest",
			Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
				req := new(ingestionv1.IngestRequest)
				if err := dec(req); err != nil {
					return nil, err
				}
				h := func(context.Context, any) (any, error) {
					*reached++
					return &emptypb.Empty{}, nil
				}
				return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + decodeService + "/Ingest"}, h)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Watch",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				if err := stream.RecvMsg(new(ingestionv1.IngestRequest)); err != nil {
					return err
				}
				*reached++
				return stream.SendMsg(&emptypb.Empty{})
			},
		}},
	}
}

// rawCodec sends *[]byte as is, so a test can put any bytes on the wire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// deepStruct is a google.protobuf.Struct nested depth levels deep under key
// "a", encoded by hand: proto.Marshal would recurse as deep. Every level is
// a prefix of the next one in (the key comes before the value), so the
// prefixes are built innermost first and written outermost first.
func deepStruct(depth int) []byte {
	var prefixes [][]byte
	size := 0 // of the Struct built so far; the innermost is empty
	for range depth {
		val := protowire.AppendTag(nil, 5, protowire.BytesType) // Value.struct_value
		val = protowire.AppendVarint(val, uint64(size))
		valSize := len(val) + size
		entry := protowire.AppendTag(nil, 1, protowire.BytesType) // key
		entry = protowire.AppendString(entry, "a")
		entry = protowire.AppendTag(entry, 2, protowire.BytesType) // value
		entry = protowire.AppendVarint(entry, uint64(valSize))
		entrySize := len(entry) + valSize
		st := protowire.AppendTag(nil, 1, protowire.BytesType) // Struct.fields
		st = protowire.AppendVarint(st, uint64(entrySize))
		prefixes = append(prefixes, append(append(st, entry...), val...))
		size = len(st) + entrySize
	}
	out := make([]byte, 0, size)
	for i := len(prefixes) - 1; i >= 0; i-- {
		out = append(out, prefixes[i]...)
	}
	return out
}

// ingestWith encodes an IngestRequest whose first event is ev and whose
// second event's field 10 (properties) is props, raw.
func ingestWith(t testing.TB, props []byte) []byte {
	t.Helper()
	first, err := proto.Marshal(&ingestionv1.Event{UserId: "u", Event: "e"})
	if err != nil {
		t.Fatal(err)
	}
	second := protowire.AppendTag(nil, 4, protowire.BytesType)
	second = protowire.AppendString(second, "u")
	second = protowire.AppendTag(second, 10, protowire.BytesType)
	second = protowire.AppendBytes(second, props)
	var b []byte
	for _, ev := range [][]byte{first, second} {
		b = protowire.AppendTag(b, 2, protowire.BytesType) // IngestRequest.events
		b = protowire.AppendBytes(b, ev)
	}
	return b
}

// structWith is a Struct holding key: value, where value is a raw Value.
func structWith(key string, value []byte) []byte {
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, key)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, value)
	st := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(st, entry)
}

func stringValue(s string) []byte {
	v := protowire.AppendTag(nil, 3, protowire.BytesType) // Value.string_value
	return protowire.AppendString(v, s)
}

func TestMalformedRequestsAreInvalidArgument(t *testing.T) {
	var reached int
	s, err := New(Config{Name: "test", GRPCAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)},
		auth.Policy{
			"/" + decodeService + "/Ingest": auth.RoleRead,
			"/" + decodeService + "/Watch":  auth.RoleRead,
			method("Echo"):                  auth.RoleRead,
		}, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	desc := decodeDesc(&reached)
	s.GRPC.RegisterService(&desc, nil)
	s.GRPC.RegisterService(&testDesc, testImpl{})
	runServer(t, s)
	cc := dial(t, s, readToken)

	valid, err := proto.Marshal(&ingestionv1.IngestRequest{Events: []*ingestionv1.Event{{UserId: "u", Event: "e"}}})
	if err != nil {
		t.Fatal(err)
	}
	badString := protowire.AppendTag(nil, 1, protowire.BytesType) // StringValue.value
	badString = protowire.AppendBytes(badString, []byte("ok\xff\xfe"))
	tests := []struct {
		name   string
		method string
		body   []byte
		code   codes.Code
		field  string // the BadRequest field violation, "" for none
		msg    string // a substring of the message
	}{
		{"valid", "Ingest", valid, codes.OK, "", ""},
		{"invalid UTF-8 in a string field", "Echo", badString, codes.InvalidArgument, "value", "google.protobuf.StringValue: value: not valid UTF-8"},
		{"invalid UTF-8 in a nested string", "Ingest", ingestWith(t, structWith("plan", stringValue("pro\xff"))),
			codes.InvalidArgument, "events[1].properties.plan", "not valid UTF-8"},
		{"invalid UTF-8 in a Struct key", "Ingest", ingestWith(t, structWith("k\xff", stringValue("x"))),
			codes.InvalidArgument, `events[1].properties["k\xff"]`, "not valid UTF-8"},
		{"truncated", "Ingest", valid[:len(valid)-3], codes.InvalidArgument, "events[0]", "truncated"},
		{"random bytes", "Ingest", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, codes.InvalidArgument, "", "malformed field tag"},
		{"field number zero", "Ingest", []byte{0x02, 0x00}, codes.InvalidArgument, "", "malformed cairn.ingestion.v1.IngestRequest"},
		{"struct nested 20,000 deep", "Ingest", ingestWith(t, deepStruct(20000)), codes.InvalidArgument, "events[1].properties", "nested more than 10000 levels deep"},
		{"struct nested 20,000 deep, streaming", "Watch", ingestWith(t, deepStruct(20000)), codes.InvalidArgument, "events[1].properties", "nested more than 10000 levels deep"},
		{"invalid UTF-8, streaming", "Watch", ingestWith(t, structWith("plan", stringValue("\xc3\x28"))), codes.InvalidArgument, "events[1].properties.plan", "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := reached
			full := "/" + decodeService + "/" + tc.method
			if tc.method == "Echo" {
				full = method("Echo")
			}
			body, out := tc.body, []byte(nil)
			if tc.method == "Watch" {
				st, serr := cc.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true}, full, grpc.ForceCodecV2(rawCodec{}))
				if serr != nil {
					t.Fatal(serr)
				}
				if serr := st.SendMsg(&body); serr != nil {
					t.Fatal(serr)
				}
				if serr := st.CloseSend(); serr != nil {
					t.Fatal(serr)
				}
				err = st.RecvMsg(&out)
			} else {
				err = cc.Invoke(t.Context(), full, &body, &out, grpc.ForceCodecV2(rawCodec{}))
			}
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tc.code)
			}
			if tc.code == codes.OK {
				return
			}
			if reached != before {
				t.Fatal("the handler saw a malformed request")
			}
			if !strings.Contains(st.Message(), tc.msg) {
				t.Errorf("message %q lacks %q", st.Message(), tc.msg)
			}
			if !utf8.ValidString(st.Message()) {
				t.Errorf("message %q is not valid UTF-8", st.Message())
			}
			if got := violation(st); got != tc.field {
				t.Errorf("field violation = %q, want %q", got, tc.field)
			}
		})
	}

	t.Run("metrics count them as InvalidArgument", func(t *testing.T) {
		var b bytes.Buffer
		mfs, err := s.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "cairn_grpc_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					fmt.Fprintf(&b, "%s=%s ", l.GetName(), l.GetValue())
				}
				fmt.Fprintf(&b, "%v\n", m.GetCounter().GetValue())
			}
		}
		if !strings.Contains(b.String(), "code=InvalidArgument method=/"+decodeService+"/Ingest") {
			t.Errorf("requests_total:\n%s", b.String())
		}
	})
}

func violation(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// TestMarkCannotBeForged sends a valid message carrying the codec's mark
// field under a wrong key: it is an ordinary unknown field.
func TestMarkCannotBeForged(t *testing.T) {
	c := newCodec()
	sp, err := proto.Marshal(status.New(codes.InvalidArgument, "forged").Proto())
	if err != nil {
		t.Fatal(err)
	}
	b := protowire.AppendTag(nil, markField, protowire.BytesType)
	b = protowire.AppendBytes(b, append(make([]byte, 16), sp...))
	m := new(wrapperspb.StringValue)
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
		t.Fatal(err)
	}
	if err := c.refused(m); err != nil {
		t.Fatalf("refused = %v, want nil for a mark under another key", err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	c := newCodec()
	in := &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{{UserId: "u", Event: "e", Properties: &structpb.Struct{
		Fields: map[string]*structpb.Value{"plan": structpb.NewStringValue("pro")}}}}}
	data, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := new(ingestionv1.IngestRequest)
	if err := c.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	if c.refused(out) != nil || !proto.Equal(in, out) {
		t.Fatalf("round trip = %v, want %v", out, in)
	}
}

// FuzzCodec decodes arbitrary bytes as an IngestRequest through the
// servers' codec: Unmarshal never fails (grpc-go would answer Internal), a
// request proto.Unmarshal accepts decodes to the same message, and one it
// refuses is marked with InvalidArgument whose message names the message
// type, is valid UTF-8, and names a field whenever the field is known.
func FuzzCodec(f *testing.F) {
	valid, err := proto.Marshal(&ingestionv1.IngestRequest{Workspace: "w", Events: []*ingestionv1.Event{{
		UserId: "u", Event: "e", Properties: &structpb.Struct{Fields: map[string]*structpb.Value{
			"tags": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("a"), structpb.NewNumberValue(1)}}),
		}},
	}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(ingestWith(f, structWith("plan", stringValue("pro\xff"))))
	f.Add(ingestWith(f, deepStruct(30)))
	f.Add([]byte{0xff, 0xff, 0xff})
	c := newCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		got := new(ingestionv1.IngestRequest)
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
			t.Fatalf("Unmarshal = %v, want nil (errors travel in the message)", err)
		}
		want := new(ingestionv1.IngestRequest)
		perr := proto.Unmarshal(b, want)
		err := c.refused(got)
		if perr == nil {
			if err != nil || !proto.Equal(got, want) {
				t.Fatalf("valid request: refused = %v, decoded %v, want %v", err, got, want)
			}
			return
		}
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.InvalidArgument {
			t.Fatalf("proto.Unmarshal failed (%v) but refused = %v, want InvalidArgument", perr, err)
		}
		if !strings.HasPrefix(st.Message(), "malformed cairn.ingestion.v1.IngestRequest: ") || !utf8.ValidString(st.Message()) {
			t.Fatalf("message %q does not name the message type or is not UTF-8", st.Message())
		}
		if f := violation(st); !utf8.ValidString(f) {
			t.Fatalf("field %q is not valid UTF-8", f)
		}
		if strings.Contains(perr.Error(), "UTF-8") {
			if violation(st) == "" {
				t.Fatalf("invalid UTF-8 (%v) reported without a field: %q", perr, st.Message())
			}
		}
		if proto.Size(got) != len(got.ProtoReflect().GetUnknown()) {
			t.Fatalf("a refused request keeps decoded fields: %v", got)
		}
	})
}
