package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// codec is the servers' gRPC codec: grpc-go's protobuf codec, except that a
// request that does not decode (invalid UTF-8 in a string field, a truncated
// message, random bytes, nesting past protobuf's recursion limit, a payload
// flagged gzip that is not: see checkedGzip) is the client's error,
// InvalidArgument naming the field, instead of Internal.
//
// grpc-go turns any error the codec returns into Internal, and does so
// before any interceptor runs (for unary calls, inside the generated
// handler). So on a decoding error Unmarshal succeeds: it resets the message
// and records the InvalidArgument status in it, as one unknown field under
// a random per-codec key. The first interceptor (unary) or the stream's
// RecvMsg (stream) finds it and fails the call. Keeping it in the message
// rather than in a table keyed by message means nothing is left behind when
// grpc-go fails a call before any interceptor sees it (a unary call sent
// two messages), and a client cannot forge the mark without the key.
type codec struct {
	base encoding.CodecV2
	key  [16]byte
}

// markField is the unknown field that carries the status: the highest valid
// field number, which no Cairn message uses.
const markField = protowire.MaxValidNumber

func newCodec() *codec {
	c := &codec{base: encoding.GetCodecV2(gproto.Name)}
	_, _ = rand.Read(c.key[:]) // never fails (crypto/rand panics instead)
	return c
}

func (c *codec) Name() string { return gproto.Name }

// Encoded is a message already in protobuf wire form. A handler sends one
// with its stream's SendMsg to pass on records that are stored in wire form
// without decoding and re-encoding them: the ingestion log's Subscribe sends
// every event to three consumers, and doing so through the generated types
// cost it about half of its CPU in the running suite.
type Encoded []byte

// encodedCodec is grpc-go's protobuf codec that also sends an Encoded as it
// is. It replaces the registered "proto" codec, so that any server or stream
// of a process that imports this package can send one, whether or not it
// was built with New (tests build bare grpc.Servers).
type encodedCodec struct{ encoding.CodecV2 }

func (c encodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(Encoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(e)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// Unmarshal refuses a message that was flagged gzip and was not (see
// checkedGzip), as grpc-go would have, rather than decode what it holds.
//
// It decodes with the generated UnmarshalVT where the message has one. That
// code is several times cheaper than the protobuf runtime's reflection (the
// three consumers each decode every event ingestion serves, which was a
// fifth of each one's CPU in the running suite), but it neither validates
// UTF-8 nor bounds nesting. So it is used here, where a process decodes what
// its own peers sent it (responses, and Subscribe streams from upstream
// services), and never for requests: servers built with New decode requests
// with codec.Unmarshal, which keeps the runtime's checks and explains them.
func (c encodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if reason, ok := gzipFaultSlice(data); ok {
		return fmt.Errorf("grpc-encoding gzip: the message is not valid gzip: %s", reason)
	}
	if m, ok := v.(vtMessage); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		m.Reset() // UnmarshalVT merges, as proto.Merge would
		return m.UnmarshalVT(buf.ReadOnlyData())
	}
	return c.CodecV2.Unmarshal(data, v)
}

// VTCodec is the process-wide codec, except that it encodes requests with
// the generated MarshalVT. It is for calls whose requests were validated
// before they were built, which proto.Marshal would otherwise check again:
// the gateway's tracking path, where the Segment decoder has refused invalid
// UTF-8 and bounded nesting (and ingestion's server decodes with the
// runtime's checks regardless). Encoding a 100-event IngestRequest was a
// third of the gateway's CPU in the running suite. Use it with
// grpc.ForceCodecV2.
type VTCodec struct{}

// Name is "proto": the same content subtype as the default codec.
func (VTCodec) Name() string { return gproto.Name }

// Marshal encodes v with MarshalVT where it has one.
func (VTCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(vtMessage); ok {
		return marshalVT(m)
	}
	return encoding.GetCodecV2(gproto.Name).Marshal(v)
}

// Unmarshal decodes as the process-wide codec does.
func (VTCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(gproto.Name).Unmarshal(data, v)
}

// vtMessage is a message with vtprotobuf's generated methods (gen/ has them
// for every Cairn message).
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
	Reset()
}

// marshalVT is grpc-go's proto codec's Marshal with the generated encoder:
// small messages in their own slice, larger ones in a pooled buffer.
func marshalVT(m vtMessage) (mem.BufferSlice, error) {
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		b := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(b); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func init() {
	if _, done := encoding.GetCodecV2(gproto.Name).(encodedCodec); !done {
		encoding.RegisterCodecV2(encodedCodec{encoding.GetCodecV2(gproto.Name)})
	}
}

// Marshal encodes a server's responses with the generated MarshalVT, which
// is cheaper than the runtime's reflection (stages, health and routing send
// every record of their logs to each subscriber this way). Unlike
// proto.Marshal it does not refuse invalid UTF-8; responses hold what the
// services stored, which was checked on the way in. Requests a process sends
// go through the process-wide codec, which keeps proto.Marshal's check, so
// that a bad string is caught before it leaves (see the gateway's upstream
// UTF-8 net).
func (c *codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(vtMessage); ok {
		return marshalVT(m)
	}
	return c.base.Marshal(v)
}

func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return c.base.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	var st *status.Status
	if reason, ok := gzipFault(b); ok {
		st = status.New(codes.InvalidArgument, "malformed request: grpc-encoding gzip: the message is not valid gzip: "+reason)
	} else {
		err := proto.Unmarshal(b, m)
		if err == nil {
			return nil
		}
		st = malformed(m.ProtoReflect().Descriptor(), b, err)
	}
	mark, err := proto.Marshal(st.Proto())
	if err != nil {
		return err // grpc-go answers Internal, as it would without this codec
	}
	proto.Reset(m)
	u := protowire.AppendTag(nil, markField, protowire.BytesType)
	u = protowire.AppendBytes(u, append(c.key[:], mark...))
	m.ProtoReflect().SetUnknown(u)
	return nil
}

// refused returns the status Unmarshal recorded in m, or nil.
func (c *codec) refused(v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return nil
	}
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != markField || typ != protowire.BytesType {
		return nil
	}
	val, vn := protowire.ConsumeBytes(u[n:])
	if vn < 0 || n+vn != len(u) || len(val) < len(c.key) || !bytes.Equal(val[:len(c.key)], c.key[:]) {
		return nil
	}
	sp := &spb.Status{}
	if proto.Unmarshal(val[len(c.key):], sp) != nil {
		return status.Error(codes.InvalidArgument, "malformed request")
	}
	return status.FromProto(sp).Err()
}

// unary fails a call whose request did not decode. pkg/server installs it
// right after the metrics interceptor, so that such calls are counted and
// nothing else (auth, the handler) sees the emptied request.
func (c *codec) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.refused(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// stream is unary for streaming calls: every RecvMsg checks its message.
func (c *codec) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, c: c})
}

type checkedStream struct {
	grpc.ServerStream
	c *codec
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.c.refused(m)
}

// maxDepth is protobuf's recursion limit (protowire.DefaultRecursionLimit),
// which proto.Unmarshal enforces.
const maxDepth = protowire.DefaultRecursionLimit

// malformed explains why b is not a valid md: InvalidArgument with a
// google.rpc.BadRequest naming the field where decoding failed, e.g.
// "events[0].properties.plan: not valid UTF-8". err is proto.Unmarshal's
// error, used when the walk finds nothing more precise.
func malformed(md protoreflect.MessageDescriptor, b []byte, err error) *status.Status {
	prefix := "malformed " + string(md.FullName())
	p := (&walker{}).message(md, b, 0)
	if p == nil {
		return status.New(codes.InvalidArgument, prefix+": "+strings.TrimPrefix(err.Error(), "proto: "))
	}
	field := p.field()
	msg := prefix + ": " + p.reason
	if field != "" {
		msg = prefix + ": " + field + ": " + p.reason
	}
	st := status.New(codes.InvalidArgument, msg)
	if field == "" {
		return st
	}
	d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: p.reason}}})
	if derr != nil {
		return st
	}
	return d
}

// problem is where a walk found the message invalid. path holds the field
// path's segments innermost first, since they are added on the way out of
// the recursion.
type problem struct {
	path   []segment
	reason string
}

// segment is one step of a field path: ".name", "[3]", ".plan" (a Struct
// key) or "" (a google.protobuf.Value, which paths skip).
type segment struct {
	text string
	// intoStruct marks the field that holds a google.protobuf.Struct,
	// Value or ListValue, where a nesting error names the deep structure
	// instead of listing ten thousand segments.
	intoStruct bool
}

func (p *problem) field() string {
	var b strings.Builder
	for i := len(p.path) - 1; i >= 0; i-- {
		b.WriteString(p.path[i].text)
		if p.reason == depthReason && (p.path[i].intoStruct || len(p.path)-i >= 8) {
			break
		}
	}
	return strings.TrimPrefix(b.String(), ".")
}

func (p *problem) in(text string, intoStruct bool) *problem {
	p.path = append(p.path, segment{text, intoStruct})
	return p
}

var depthReason = fmt.Sprintf("nested more than %d levels deep", maxDepth)

// walker retraces proto.Unmarshal's checks over the wire format to find the
// field it failed on. It runs only after Unmarshal failed, so it favours
// clarity over speed.
type walker struct{}

// message walks b as a message of type md at nesting depth.
func (w *walker) message(md protoreflect.MessageDescriptor, b []byte, depth int) *problem {
	if depth > maxDepth {
		return &problem{reason: depthReason}
	}
	counts := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return &problem{reason: "malformed field tag: " + wireError(n)}
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		seg := "." + strconv.Itoa(int(num)) // an unknown field, by number
		if fd != nil {
			seg = w.name(md, fd, counts[num])
			if fd.IsList() {
				counts[num]++
			}
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return (&problem{reason: "truncated or malformed value: " + wireError(m)}).in(seg, false)
		}
		val := b[:m]
		b = b[m:]
		if fd == nil || typ != protowire.BytesType {
			continue // unknown or wire type mismatch: kept as unknown, not an error
		}
		if p := w.field(md, fd, val, seg, depth); p != nil {
			return p
		}
	}
	return nil
}

// field checks one length-delimited value val of fd (its length prefix
// included).
func (w *walker) field(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, val []byte, seg string, depth int) *problem {
	v, n := protowire.ConsumeBytes(val)
	if n < 0 {
		return (&problem{reason: "truncated value"}).in(seg, false)
	}
	switch {
	case fd.IsMap():
		return w.mapEntry(md, fd, v, depth)
	case fd.Kind() == protoreflect.MessageKind:
		p := w.message(fd.Message(), v, depth+1)
		if p == nil {
			return nil
		}
		return p.in(seg, isStructType(fd.Message().FullName()) && !isStructType(md.FullName()))
	case fd.Kind() == protoreflect.StringKind:
		if enforceUTF8(fd) && !utf8.Valid(v) {
			return (&problem{reason: "not valid UTF-8"}).in(seg, false)
		}
	case fd.IsList() && isPackable(fd.Kind()):
		if p := packed(fd.Kind(), v); p != nil {
			return p.in(seg, false)
		}
	}
	return nil
}

// mapEntry checks one entry of the map field fd. Entries of a Struct's
// fields are named ".key" like a JSON path; other maps' "[key]".
func (w *walker) mapEntry(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, entry []byte, depth int) *problem {
	ed := fd.Message()
	var key []byte
	var keySeen bool
	for rest := entry; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			break
		}
		if num == 1 && typ == protowire.BytesType && ed.Fields().ByNumber(1).Kind() == protoreflect.StringKind {
			key, _ = protowire.ConsumeBytes(rest[n : n+m])
			keySeen = true
		}
		rest = rest[n+m:]
	}
	seg := "." + string(fd.Name())
	if keySeen {
		seg += "[" + strconv.Quote(string(key)) + "]"
		if md.FullName() == "google.protobuf.Struct" {
			seg = mapKeySegment(key)
		}
	}
	p := w.message(ed, entry, depth+1)
	if p == nil {
		return nil
	}
	// The entry's own fields ("key", "value") add nothing a reader needs.
	intoStruct := false
	if n := len(p.path); n > 0 && (p.path[n-1].text == ".value" || p.path[n-1].text == ".key") {
		intoStruct = p.path[n-1].intoStruct
		p.path = p.path[:n-1]
	}
	return p.in(seg, intoStruct)
}

// name names fd's n-th occurrence in md. google.protobuf.Value and
// ListValue are transparent, so a property reads "properties.plan" and a
// list item "properties.tags[2]", as ingestion's validation names them.
func (w *walker) name(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, n int) string {
	switch md.FullName() {
	case "google.protobuf.Value":
		return ""
	case "google.protobuf.ListValue":
		return "[" + strconv.Itoa(n) + "]"
	}
	if fd.IsList() {
		return "." + string(fd.Name()) + "[" + strconv.Itoa(n) + "]"
	}
	return "." + string(fd.Name())
}

// mapKeySegment names a Struct key: ".plan", or `["odd key"]` when the key
// would not read as one path segment (or is not valid UTF-8).
func mapKeySegment(key []byte) string {
	plain := len(key) > 0 && utf8.Valid(key)
	for _, r := range string(key) {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return "." + string(key)
	}
	return "[" + strconv.Quote(string(key)) + "]"
}

// wireError is protowire's error for code n, without its "proto: ".
func wireError(n int) string {
	return strings.TrimPrefix(protowire.ParseError(n).Error(), "proto: ")
}

func isStructType(n protoreflect.FullName) bool {
	return n == "google.protobuf.Struct" || n == "google.protobuf.Value" || n == "google.protobuf.ListValue"
}

// enforceUTF8 mirrors protobuf-go: proto3 string fields must hold UTF-8,
// and editions files decide per field.
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	if fd.Syntax() == protoreflect.Editions {
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return fd.Syntax() == protoreflect.Proto3
}

func isPackable(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind, protoreflect.GroupKind:
		return false
	}
	return true
}

// packed checks a packed repeated scalar field's content.
func packed(k protoreflect.Kind, v []byte) *problem {
	for len(v) > 0 {
		var n int
		switch k {
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			_, n = protowire.ConsumeFixed32(v)
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			_, n = protowire.ConsumeFixed64(v)
		default:
			_, n = protowire.ConsumeVarint(v)
		}
		if n < 0 {
			return &problem{reason: "malformed packed value: " + wireError(n)}
		}
		v = v[n:]
	}
	return nil
}
