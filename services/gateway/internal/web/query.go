package web

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// QueryParser fills a request message from the query string as
// grpc-gateway's DefaultQueryParser does, with two conventions for every
// enum parameter, read from the protobuf enum descriptors:
//
//   - a value may be given in its short form, the value name without its
//     type's prefix, in lower case (band=at_risk for BAND_AT_RISK,
//     status=customer for ACCOUNT_STATUS_CUSTOMER), or by its full name;
//     both are matched without regard to case;
//   - an unknown value is refused, naming the parameter, the value and
//     the values accepted.
//
// A parameter that does not parse (page.pageSize=ten) is refused naming it
// too. grpc-gateway flattens the error into an InvalidArgument message; it
// starts "query parameter <name>: ", from which FromError rebuilds the
// field violation.
type QueryParser struct {
	runtime.DefaultQueryParser
}

// Parse implements runtime.QueryParameterParser.
func (p *QueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first bad parameter named is the same on every call
	md := msg.ProtoReflect().Descriptor()
	seen := make(map[string]string, len(keys))
	for _, key := range keys {
		vs := values[key]
		path, fd := fieldPath(md, key)
		if path == "" {
			// grpc-gateway would ignore it: a misspelt filter would then
			// answer as if no filter were given.
			return fmt.Errorf("%s%s: no such parameter; this route takes %s", paramPrefix, printable(key), strings.Join(queryNames(md, "", 0), ", "))
		}
		if path != "" {
			if other, dup := seen[path]; dup {
				return fmt.Errorf("%s%s: sets the same field as %s", paramPrefix, printable(key), printable(other))
			}
			seen[path] = key
		}
		if fd != nil && fd.Kind() == protoreflect.EnumKind {
			out := make([]string, len(vs))
			for i, v := range vs {
				name, err := enumValue(fd.Enum(), v)
				if err != nil {
					return fmt.Errorf("%s%s: %w", paramPrefix, printable(key), err)
				}
				out[i] = name
			}
			vs = out
		}
		if err := p.DefaultQueryParser.Parse(msg, url.Values{key: vs}, filter); err != nil {
			return fmt.Errorf("%s%s: %s", paramPrefix, printable(key), describeParseError(fd, vs, err))
		}
	}
	return nil
}

// fieldPath resolves a query key ("page.pageSize", "band") to the field it
// sets, by proto or JSON names, as grpc-gateway does. It returns the
// field's proto path and descriptor, or "" and nil when the key names no
// field (grpc-gateway ignores those).
func fieldPath(md protoreflect.MessageDescriptor, key string) (string, protoreflect.FieldDescriptor) {
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i] // a map entry, key[k]=v
	}
	var (
		names []string
		fd    protoreflect.FieldDescriptor
	)
	for part := range strings.SplitSeq(key, ".") {
		if md == nil {
			return "", nil
		}
		fd = md.Fields().ByTextName(part)
		if fd == nil {
			fd = md.Fields().ByJSONName(part)
		}
		if fd == nil {
			return "", nil
		}
		names = append(names, string(fd.Name()))
		md = fd.Message()
	}
	return strings.Join(names, "."), fd
}

// queryNames lists the query parameters a request message takes: its
// scalar and enum fields by their JSON names, nested messages' fields
// dotted (page.pageSize), down to a few levels.
func queryNames(md protoreflect.MessageDescriptor, prefix string, depth int) []string {
	var out []string
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + fd.JSONName()
		switch {
		case fd.IsMap():
			out = append(out, name+"[key]")
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if depth < 3 && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
				out = append(out, queryNames(fd.Message(), name+".", depth+1)...)
			} else {
				out = append(out, name)
			}
		default:
			out = append(out, name)
		}
	}
	return out
}

// EnumPrefix is the prefix every value name of ed starts with, by the
// protobuf style guide: the enum's name in UPPER_SNAKE_CASE and "_"
// (Band: "BAND_", AccountSort: "ACCOUNT_SORT_"). When the values do not
// all share it, it is their longest common prefix ending in "_".
func EnumPrefix(ed protoreflect.EnumDescriptor) string {
	prefix := upperSnake(string(ed.Name())) + "_"
	values := ed.Values()
	all := true
	for i := range values.Len() {
		all = all && strings.HasPrefix(string(values.Get(i).Name()), prefix)
	}
	if all {
		return prefix
	}
	if values.Len() == 0 {
		return ""
	}
	common := string(values.Get(0).Name())
	for i := 1; i < values.Len(); i++ {
		n := string(values.Get(i).Name())
		j := 0
		for j < len(common) && j < len(n) && common[j] == n[j] {
			j++
		}
		common = common[:j]
	}
	return common[:strings.LastIndexByte(common, '_')+1]
}

// ShortName is the short form of an enum value: its name without the
// enum's prefix, in lower case ("at_risk" for BAND_AT_RISK).
func ShortName(ev protoreflect.EnumValueDescriptor) string {
	ed := ev.Parent().(protoreflect.EnumDescriptor)
	short := strings.TrimPrefix(string(ev.Name()), EnumPrefix(ed))
	if short == "" {
		short = string(ev.Name())
	}
	return strings.ToLower(short)
}

// enumValue returns the full name of the value of ed that v names: its
// short form or full name in any case, or its number.
func enumValue(ed protoreflect.EnumDescriptor, v string) (string, error) {
	values := ed.Values()
	for i := range values.Len() {
		ev := values.Get(i)
		if strings.EqualFold(v, string(ev.Name())) || strings.EqualFold(v, ShortName(ev)) {
			return string(ev.Name()), nil
		}
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		if ev := values.ByNumber(protoreflect.EnumNumber(n)); ev != nil {
			return string(ev.Name()), nil
		}
	}
	return "", fmt.Errorf("unknown value %s; want one of %s", strconv.Quote(v), strings.Join(shortNames(ed), ", "))
}

// shortNames lists the short forms of ed's values, without the zero
// value (UNSPECIFIED: no filter, the same as leaving the parameter out).
func shortNames(ed protoreflect.EnumDescriptor) []string {
	var out []string
	values := ed.Values()
	for i := range values.Len() {
		if ev := values.Get(i); ev.Number() != 0 {
			out = append(out, ShortName(ev))
		}
	}
	return out
}

// describeParseError says why grpc-gateway could not parse vs into fd,
// without strconv's internals ("strconv.ParseInt: parsing ...").
func describeParseError(fd protoreflect.FieldDescriptor, vs []string, err error) string {
	v := ""
	if len(vs) > 0 {
		v = vs[len(vs)-1]
	}
	if fd == nil {
		return err.Error()
	}
	if !fd.IsList() && len(vs) > 1 {
		return "given more than once"
	}
	quoted := strconv.Quote(v)
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return quoted + " is not true or false"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return quoted + " is not a 32-bit integer"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return quoted + " is not an unsigned 32-bit integer"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return quoted + " is not a 64-bit integer"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return quoted + " is not an unsigned 64-bit integer"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return quoted + " is not a number"
	case protoreflect.MessageKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return quoted + " is not an RFC 3339 time such as 2026-03-01T00:00:00Z"
		case "google.protobuf.Duration":
			return quoted + ` is not a duration such as "90s"`
		}
	}
	return err.Error()
}

// upperSnake turns "AccountSort" into "ACCOUNT_SORT".
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) && i > 0 {
			prev := rune(s[i-1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
