package web

import (
	"encoding/base64"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// JSON is the REST facade's response marshaler. Its output stays valid
// protobuf JSON, which any protojson decoder reads back, with three
// conventions chosen for people and for JavaScript (docs/api.md):
//
//   - fields left at their default are omitted: no empty strings, lists or
//     zero counts, as protojson with EmitUnpopulated false;
//   - 64-bit integers are JSON numbers, not strings (protojson decoders
//     accept both); the only counts that can pass 2^53 are the raw
//     nanosecond samples of `parts=true` answers;
//   - a Duration is rounded to the millisecond ("90.5s", not
//     "90.500000001s"), and a page's totalSize is absent when the service
//     does not know it, instead of -1.
//
// Everything else (enum names, RFC 3339 timestamps, Struct and Any) is
// written as protojson writes it. Requests are decoded by the embedded
// JSONPb.
type JSON struct {
	*runtime.JSONPb
}

// NewJSON returns the marshaler, decoding request bodies with unknown
// fields ignored.
func NewJSON() JSON {
	return JSON{JSONPb: &runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true}}}
}

// Marshal writes a protobuf message by the conventions above; anything
// else as JSONPb does.
func (j JSON) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return j.JSONPb.Marshal(v)
	}
	return MarshalMessage(m)
}

// NewEncoder returns an encoder writing with Marshal.
func (j JSON) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := j.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// MarshalMessage encodes m by the conventions of JSON.
func MarshalMessage(m proto.Message) ([]byte, error) {
	return appendMessage(nil, m.ProtoReflect(), 0)
}

// maxDepth stops the encoder on messages nested deeper than protojson
// would decode.
const maxDepth = 10000

func appendMessage(b []byte, m protoreflect.Message, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	md := m.Descriptor()
	if md.FullName() == "google.protobuf.Duration" {
		return appendDuration(b, m), nil
	}
	if md.FullName().Parent() == "google.protobuf" {
		// Timestamp, Struct, Value, Any, wrappers, FieldMask, Empty: their
		// JSON forms are protojson's.
		out, err := protojson.Marshal(m.Interface())
		if err != nil {
			return nil, err
		}
		return append(b, compact(out)...), nil
	}
	b = append(b, '{')
	first := true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			if !(isTotalSize(fd) && m.Get(fd).Int() == 0) {
				continue
			}
			// A known total of zero is an answer; only an unknown one is left out.
		}
		v := m.Get(fd)
		if isTotalSize(fd) && v.Int() < 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, fd.JSONName())
		b = append(b, ':')
		var err error
		switch {
		case fd.IsList():
			b, err = appendList(b, fd, v.List(), depth)
		case fd.IsMap():
			b, err = appendMap(b, fd, v.Map(), depth)
		default:
			b, err = appendValue(b, fd, v, depth)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// isTotalSize reports whether fd is cairn.common.v1.PageResponse.total_size,
// where -1 means "not known".
func isTotalSize(fd protoreflect.FieldDescriptor) bool {
	return fd.Name() == "total_size" && fd.ContainingMessage().FullName() == "cairn.common.v1.PageResponse"
}

func appendList(b []byte, fd protoreflect.FieldDescriptor, l protoreflect.List, depth int) ([]byte, error) {
	b = append(b, '[')
	for i := range l.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendValue(b, fd, l.Get(i), depth); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func appendMap(b []byte, fd protoreflect.FieldDescriptor, mp protoreflect.Map, depth int) ([]byte, error) {
	type entry struct {
		key string
		val protoreflect.Value
	}
	entries := make([]entry, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k.String(), v})
		return true
	})
	slices.SortFunc(entries, func(a, b entry) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	b = append(b, '{')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.key)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, fd.MapValue(), e.val, depth); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case protoreflect.FloatKind:
		return appendFloat(b, v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return appendFloat(b, v.Float(), 64), nil
	case protoreflect.StringKind:
		return appendString(b, v.String()), nil
	case protoreflect.BytesKind:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"'), nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return append(b, "null"...), nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendString(b, string(ev.Name())), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(b, v.Message(), depth+1)
	}
	return append(b, "null"...), nil
}

// appendFloat writes f as protojson does: NaN and infinities as strings.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendDuration writes d rounded to the millisecond in protojson's form,
// "<seconds>[.fraction]s", with no trailing zeros in the fraction.
func appendDuration(b []byte, m protoreflect.Message) []byte {
	d, ok := m.Interface().(*durationpb.Duration)
	if !ok {
		d = &durationpb.Duration{}
		proto.Merge(d, m.Interface())
	}
	ms := d.GetSeconds()*1000 + int64(math.Round(float64(d.GetNanos())/1e6))
	b = append(b, '"')
	if ms < 0 {
		b = append(b, '-')
		ms = -ms
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		s := strconv.FormatInt(frac+1000, 10)[1:] // three digits
		for s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
		b = append(b, '.')
		b = append(b, s...)
	}
	return append(b, `s"`...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string, escaping what JSON requires and
// nothing more (protojson does not escape HTML characters either).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// compact drops the whitespace protojson may put between tokens, so that
// every answer has one layout.
func compact(js []byte) []byte {
	out := js[:0:0]
	inString := false
	for i := 0; i < len(js); i++ {
		c := js[i]
		switch {
		case inString:
			out = append(out, c)
			if c == '\\' && i+1 < len(js) {
				i++
				out = append(out, js[i])
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
			out = append(out, c)
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
		default:
			out = append(out, c)
		}
	}
	return out
}

type depthError struct{}

func (depthError) Error() string { return "message nested too deep to encode" }

var errTooDeep error = depthError{}
