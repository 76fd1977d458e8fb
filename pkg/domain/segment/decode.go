package segment

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/jsonpos"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The decoder below reads Segment JSON in one validating pass over the body
// and then builds Events and structpb values straight from the spans it
// recorded. It replaced encoding/json (map[string]json.RawMessage per level,
// then map[string]any and structpb.NewStruct), which cost ~140 allocations
// per event on the gateway's /v1/batch path. Its observable behaviour is the
// old one's, down to duplicate keys (the last wins) and lone surrogate
// escapes (replaced by U+FFFD); reference_test.go keeps the old
// implementation as the oracle. It parts from it only to name what it
// refuses: invalid UTF-8 and nesting beyond maxDepth refuse the whole
// document (ErrMalformed) naming the field where they occur, and a number
// beyond float64 rejects its call naming the property, where the old one
// said "not a JSON object" of the enclosing object.
//
// The body is copied once into a string so that strings without escapes
// become substrings of it instead of allocations of their own. The caller's
// []byte is not retained.

// maxDepth is encoding/json's nesting limit, kept so that the same documents
// are accepted.
const maxDepth = 10000

// ErrMalformed marks a *FieldError about the JSON text itself, invalid
// UTF-8 or nesting deeper than the limit: the whole document is refused,
// though the error names the field where the problem is.
var ErrMalformed = errors.New("malformed JSON")

var (
	errSyntax = errors.New("invalid JSON")
	errDepth  = errors.New("nested too deep")
	errUTF8   = errors.New("invalid UTF-8")
)

// numberError is a number that does not fit a float64. path is where it is
// below the object being built, innermost segment first (".plan", "[2]"):
// segments are added only on the way out of an error.
type numberError struct {
	text string
	path []string
}

func (e *numberError) Error() string { return "number out of range" }

// within adds seg to err's path when err is a *numberError.
func within(err error, seg string) error {
	if ne, ok := err.(*numberError); ok {
		ne.path = append(ne.path, seg)
	}
	return err
}

// fieldOf returns the FieldError for a struct field (key) that failed with
// err: a number out of range names the property, anything else is
// "not a JSON object" as before.
func fieldOf(key string, err error) *FieldError {
	ne, ok := err.(*numberError)
	if !ok {
		return &FieldError{Index: -1, Field: key, Reason: "not a JSON object"}
	}
	var b strings.Builder
	b.WriteString(key)
	for i := len(ne.path) - 1; i >= 0; i-- {
		b.WriteString(ne.path[i])
	}
	return &FieldError{Index: -1, Field: b.String(), Reason: fmt.Sprintf("number %s is out of range (more than a 64-bit float holds)", truncate(ne.text))}
}

// errNotObject marks a struct field whose value is not a JSON object or holds
// a number that does not fit a float64.
var errNotObject = errors.New("not a JSON object")

// span is a value's text, s[a:b], with surrounding whitespace excluded.
type span struct{ a, b int }

// parser holds the document; depth counts the open objects and arrays.
// errAt is the offset of the last errDepth or errUTF8.
type parser struct {
	s     string
	depth int
	errAt int
	arena arena
}

// arena hands out the messages of one document from slices allocated in
// chunks: a batch builds hundreds of small messages, and one allocation per
// message was most of what the garbage collector had to do. A message keeps
// its chunk alive, which only matters as long as the request's events live.
type arena struct {
	events  []ingestionv1.Event
	structs []structpb.Struct
	values  []structpb.Value
	strs    []structpb.Value_StringValue
	nums    []structpb.Value_NumberValue
	stamps  []timestamppb.Timestamp
}

// take returns the next free element of *chunk, allocating a new chunk of n
// when it is used up.
func take[T any](chunk *[]T, n int) *T {
	if len(*chunk) == 0 {
		*chunk = make([]T, n)
	}
	e := &(*chunk)[0]
	*chunk = (*chunk)[1:]
	return e
}

// chunkSize grows with the document so that a single call does not allocate
// for a whole batch.
func (p *parser) chunkSize() int {
	return min(128, max(4, len(p.s)/256))
}

func (p *parser) newStruct(n int) *structpb.Struct {
	st := take(&p.arena.structs, p.chunkSize())
	st.Fields = make(map[string]*structpb.Value, n)
	return st
}

func (p *parser) stringValue(s string) *structpb.Value {
	k := take(&p.arena.strs, p.chunkSize())
	k.StringValue = s
	v := take(&p.arena.values, p.chunkSize())
	v.Kind = k
	return v
}

func (p *parser) numberValue(f float64) *structpb.Value {
	k := take(&p.arena.nums, p.chunkSize())
	k.NumberValue = f
	v := take(&p.arena.values, p.chunkSize())
	v.Kind = k
	return v
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *parser) ws(i int) int {
	for i < len(p.s) && isSpace(p.s[i]) {
		i++
	}
	return i
}

func (p *parser) text(v span) string { return p.s[v.a:v.b] }

func (p *parser) isNull(v span) bool { return p.text(v) == "null" }

// skip validates the value at i (leading whitespace allowed) and returns its
// span.
func (p *parser) skip(i int) (span, error) {
	i = p.ws(i)
	if i >= len(p.s) {
		return span{}, errSyntax
	}
	start := i
	var err error
	switch c := p.s[i]; {
	case c == '{':
		i, err = p.object(i, nil)
	case c == '[':
		i, err = p.array(i, nil)
	case c == '"':
		i, _, err = p.scanString(i)
	case c == 't':
		i, err = p.literal(i, "true")
	case c == 'f':
		i, err = p.literal(i, "false")
	case c == 'n':
		i, err = p.literal(i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		i, err = p.scanNumber(i)
	default:
		err = errSyntax
	}
	if err != nil {
		return span{}, err
	}
	return span{start, i}, nil
}

func (p *parser) literal(i int, lit string) (int, error) {
	if !strings.HasPrefix(p.s[i:], lit) {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

// object validates the object at i (which must be '{'), calling member, when
// not nil, with every key and value span in document order. It returns the
// index after the closing brace.
func (p *parser) object(i int, member func(key string, v span) error) (int, error) {
	p.depth++
	if p.depth > maxDepth {
		p.errAt = i
		return 0, errDepth
	}
	i = p.ws(i + 1)
	if i < len(p.s) && p.s[i] == '}' {
		p.depth--
		return i + 1, nil
	}
	for {
		i = p.ws(i)
		if i >= len(p.s) || p.s[i] != '"' {
			return 0, errSyntax
		}
		end, plain, err := p.scanString(i)
		if err != nil {
			return 0, err
		}
		var key string
		if member != nil {
			key = p.unquote(i, end, plain)
		}
		i = p.ws(end)
		if i >= len(p.s) || p.s[i] != ':' {
			return 0, errSyntax
		}
		v, err := p.skip(i + 1)
		if err != nil {
			return 0, err
		}
		if member != nil {
			if err := member(key, v); err != nil {
				return 0, err
			}
		}
		var done bool
		if i, done, err = p.next(v.b, '}'); err != nil || done {
			return i, err
		}
	}
}

// next reads what follows a member or element ending at i: a ',' (it
// returns the index after it) or the closing byte, which leaves the
// container (done, and the index after it).
func (p *parser) next(i int, closing byte) (int, bool, error) {
	i = p.ws(i)
	switch {
	case i >= len(p.s):
		return 0, false, errSyntax
	case p.s[i] == ',':
		return i + 1, false, nil
	case p.s[i] == closing:
		p.depth--
		return i + 1, true, nil
	}
	return 0, false, errSyntax
}

// array is object's counterpart for arrays.
func (p *parser) array(i int, elem func(n int, v span) error) (int, error) {
	p.depth++
	if p.depth > maxDepth {
		p.errAt = i
		return 0, errDepth
	}
	i = p.ws(i + 1)
	if i < len(p.s) && p.s[i] == ']' {
		p.depth--
		return i + 1, nil
	}
	for n := 0; ; n++ {
		v, err := p.skip(i)
		if err != nil {
			return 0, err
		}
		if elem != nil {
			if err := elem(n, v); err != nil {
				return 0, err
			}
		}
		var done bool
		if i, done, err = p.next(v.b, ']'); err != nil || done {
			return i, err
		}
	}
}

// scanString validates the string whose opening quote is at i and returns
// the index after its closing quote. plain reports that the text between the
// quotes is the value itself: no escapes. Invalid UTF-8 is errUTF8.
func (p *parser) scanString(i int) (end int, plain bool, err error) {
	s := p.s
	escaped, high := false, false
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			if high && !utf8.ValidString(s[i+1:j]) {
				p.errAt = i + 1 + invalidAt(s[i+1:j])
				return 0, false, errUTF8
			}
			return j + 1, !escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(s) {
				return 0, false, errSyntax
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s) {
					return 0, false, errSyntax
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(s[k]) {
						return 0, false, errSyntax
					}
				}
				j += 4
			default:
				return 0, false, errSyntax
			}
		case c < 0x20:
			return 0, false, errSyntax
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return 0, false, errSyntax
}

// invalidAt returns the offset of the first invalid UTF-8 sequence of s.
func invalidAt(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(s)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (p *parser) scanNumber(i int) (int, error) {
	s := p.s
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return 0, errSyntax
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return 0, errSyntax
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, errSyntax
		}
	}
	return i, nil
}

// unquote returns the value of the validated string s[i:end] (quotes
// included), as encoding/json decodes it.
func (p *parser) unquote(i, end int, plain bool) string {
	in := p.s[i+1 : end-1]
	if plain {
		return in
	}
	b := make([]byte, 0, len(in)+utf8.UTFMax)
	for r := 0; r < len(in); {
		c := in[r]
		switch {
		case c == '\\':
			switch e := in[r+1]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(in[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(in[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(in[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b)
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	v, err := strconv.ParseUint(s[2:6], 16, 32)
	if err != nil {
		return -1
	}
	return rune(v)
}

// str returns the string at v; null is the empty string.
func (p *parser) str(v span, field string) (string, *FieldError) {
	if p.s[v.a] == '"' {
		return p.unquote(v.a, v.b, p.plain(v)), nil
	}
	if p.isNull(v) {
		return "", nil
	}
	return "", &FieldError{Index: -1, Field: field, Reason: "not a string"}
}

// plain re-derives scanString's verdict for an already validated string.
func (p *parser) plain(v span) bool {
	in := p.s[v.a+1 : v.b-1]
	for j := 0; j < len(in); j++ {
		if c := in[j]; c == '\\' || c >= utf8.RuneSelf {
			return strings.IndexByte(in, '\\') < 0 && utf8.ValidString(in)
		}
	}
	return true
}

// id accepts a string or an integral JSON number and returns it as text.
func (p *parser) id(v span, field string) (string, *FieldError) {
	switch c := p.s[v.a]; {
	case c == '"':
		return p.unquote(v.a, v.b, p.plain(v)), nil
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := strconv.ParseInt(p.text(v), 10, 64); err == nil {
			return p.text(v), nil
		}
	}
	return "", &FieldError{Index: -1, Field: field, Reason: "not a string or integer"}
}

func (p *parser) timestamp(v span, field string) (*timestamppb.Timestamp, *FieldError) {
	if p.s[v.a] != '"' {
		return nil, &FieldError{Index: -1, Field: field, Reason: "not a string"}
	}
	t, err := time.Parse(time.RFC3339Nano, p.unquote(v.a, v.b, p.plain(v)))
	if err != nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "not RFC 3339"}
	}
	ts := take(&p.arena.stamps, p.chunkSize())
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	if err := ts.CheckValid(); err != nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "out of range"}
	}
	return ts, nil
}

// member is one key and value of an object.
type member struct {
	key string
	v   span
}

// members returns the object at v with duplicate keys resolved as a map
// decode does: the last value wins, at the place of the first.
func (p *parser) members(v span) ([]member, error) {
	var out []member
	p.depth = 0
	_, err := p.object(v.a, func(key string, v span) error {
		for i := range out {
			if out[i].key == key {
				out[i].v = v
				return nil
			}
		}
		out = append(out, member{key, v})
		return nil
	})
	return out, err
}

// structValue builds the Struct for the object at v.
func (p *parser) structValue(v span) (*structpb.Struct, error) {
	if p.s[v.a] != '{' {
		return nil, errNotObject
	}
	p.depth = 0
	st := p.newStruct(0)
	_, err := p.object(v.a, func(key string, v span) error {
		val, err := p.value(v)
		if err != nil {
			return within(err, "."+key)
		}
		st.Fields[key] = val
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// value builds the structpb.Value of the validated JSON value at v.
func (p *parser) value(v span) (*structpb.Value, error) {
	switch c := p.s[v.a]; {
	case c == '{':
		st := p.newStruct(0)
		_, err := p.object(v.a, func(key string, v span) error {
			val, err := p.value(v)
			if err != nil {
				return within(err, "."+key)
			}
			st.Fields[key] = val
			return nil
		})
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(st), nil
	case c == '[':
		l := &structpb.ListValue{}
		_, err := p.array(v.a, func(i int, v span) error {
			val, err := p.value(v)
			if err != nil {
				return within(err, "["+strconv.Itoa(i)+"]")
			}
			l.Values = append(l.Values, val)
			return nil
		})
		if err != nil {
			return nil, err
		}
		return structpb.NewListValue(l), nil
	case c == '"':
		return p.stringValue(p.unquote(v.a, v.b, p.plain(v))), nil
	case c == 't':
		return structpb.NewBoolValue(true), nil
	case c == 'f':
		return structpb.NewBoolValue(false), nil
	case c == 'n':
		return structpb.NewNullValue(), nil
	default:
		// The text is a valid JSON number, so the only error is range.
		f, err := strconv.ParseFloat(p.text(v), 64)
		if err != nil {
			return nil, &numberError{text: p.text(v)}
		}
		return p.numberValue(f), nil
	}
}

// mergedStruct builds an item's context or integrations: the batch-level
// members overlaid by the item's own. An item value that is not an object is
// an error, as is a bad number in a member that survives the overlay.
func (p *parser) mergedStruct(top []member, own span, present bool) (*structpb.Struct, error) {
	var mine []member
	if present && !p.isNull(own) {
		if p.s[own.a] != '{' {
			return nil, errNotObject
		}
		var err error
		if mine, err = p.members(own); err != nil {
			return nil, err
		}
	}
	st := p.newStruct(len(top) + len(mine))
	for _, m := range mine {
		val, err := p.value(m.v)
		if err != nil {
			return nil, within(err, "."+m.key)
		}
		st.Fields[m.key] = val
	}
	for _, m := range top {
		if _, ok := st.Fields[m.key]; ok {
			continue
		}
		val, err := p.value(m.v)
		if err != nil {
			return nil, within(err, "."+m.key)
		}
		st.Fields[m.key] = val
	}
	return st, nil
}

// Keys of a call that decoding reads, in the order their errors are checked.
const (
	kType = iota
	kMessageID
	kUserID
	kAnonymousID
	kGroupID
	kPreviousID
	kEvent
	kName
	kProperties
	kTraits
	kContext
	kIntegrations
	kTimestamp
	kOriginalTimestamp
	kSentAt
	kReceivedAt
	nKeys
)

var keyNames = [nKeys]string{"type", "messageId", "userId", "anonymousId", "groupId", "previousId", "event", "name",
	"properties", "traits", "context", "integrations", "timestamp", "originalTimestamp", "sentAt", "receivedAt"}

func keyIndex(key string) int {
	switch key {
	case "type":
		return kType
	case "messageId":
		return kMessageID
	case "userId":
		return kUserID
	case "anonymousId":
		return kAnonymousID
	case "groupId":
		return kGroupID
	case "previousId":
		return kPreviousID
	case "event":
		return kEvent
	case "name":
		return kName
	case "properties":
		return kProperties
	case "traits":
		return kTraits
	case "context":
		return kContext
	case "integrations":
		return kIntegrations
	case "timestamp":
		return kTimestamp
	case "originalTimestamp":
		return kOriginalTimestamp
	case "sentAt":
		return kSentAt
	case "receivedAt":
		return kReceivedAt
	}
	return -1
}

// call holds the spans of one call's known keys (the last occurrence wins).
type call struct {
	v   [nKeys]span
	has [nKeys]bool
}

func (c *call) member(key string, v span) error {
	if k := keyIndex(key); k >= 0 {
		c.v[k], c.has[k] = v, true
	}
	return nil
}

// present reports key k with a non-null value.
func (p *parser) present(c *call, k int) bool { return c.has[k] && !p.isNull(c.v[k]) }

// envelope is what a batch adds to each of its calls.
type envelope struct {
	ctx, integ     []member
	hasCtx, hasInt bool // a non-empty batch-level object to merge
	sentAt         span
	hasSentAt      bool
}

// decode builds the Event of one call, checking fields in the documented
// order so that the first problem reported is the same as before.
func (p *parser) decode(c *call, typ string, env *envelope) (*ingestionv1.Event, *FieldError) {
	ev := take(&p.arena.events, p.chunkSize())
	bodyType := ""
	if p.present(c, kType) {
		s, err := p.str(c.v[kType], "type")
		if err != nil {
			return nil, err
		}
		bodyType = s
	}
	name := typ
	switch {
	case typ == "" && bodyType == "":
		return nil, &FieldError{Field: "type", Reason: "missing"}
	case typ == "":
		name = bodyType
	case bodyType != "" && !strings.EqualFold(bodyType, typ):
		return nil, &FieldError{Field: "type", Reason: fmt.Sprintf("%q does not match the endpoint's %q", bodyType, typ)}
	}
	t, ok := ParseType(name)
	if !ok {
		return nil, &FieldError{Field: "type", Reason: fmt.Sprintf("unknown call type %q", truncate(name))}
	}
	ev.Type = t

	ids := [...]struct {
		k   int
		dst *string
	}{
		{kMessageID, &ev.MessageId}, {kUserID, &ev.UserId}, {kAnonymousID, &ev.AnonymousId},
		{kGroupID, &ev.GroupId}, {kPreviousID, &ev.PreviousId},
	}
	for _, f := range ids {
		if p.present(c, f.k) {
			var err *FieldError
			if *f.dst, err = p.id(c.v[f.k], keyNames[f.k]); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range [...]struct {
		k   int
		dst *string
	}{{kEvent, &ev.Event}, {kName, &ev.Name}} {
		if p.present(c, f.k) {
			var err *FieldError
			if *f.dst, err = p.str(c.v[f.k], keyNames[f.k]); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range [...]struct {
		k   int
		dst **structpb.Struct
	}{{kProperties, &ev.Properties}, {kTraits, &ev.Traits}, {kContext, &ev.Context}, {kIntegrations, &ev.Integrations}} {
		var err error
		switch {
		case f.k == kContext && env != nil && env.hasCtx:
			*f.dst, err = p.mergedStruct(env.ctx, c.v[f.k], c.has[f.k])
		case f.k == kIntegrations && env != nil && env.hasInt:
			*f.dst, err = p.mergedStruct(env.integ, c.v[f.k], c.has[f.k])
		case p.present(c, f.k):
			*f.dst, err = p.structValue(c.v[f.k])
		}
		if err != nil {
			return nil, fieldOf(keyNames[f.k], err)
		}
	}
	if !c.has[kSentAt] && env != nil && env.hasSentAt {
		c.v[kSentAt], c.has[kSentAt] = env.sentAt, true
	}
	for _, f := range [...]struct {
		k   int
		dst **timestamppb.Timestamp
	}{{kTimestamp, &ev.Timestamp}, {kOriginalTimestamp, &ev.OriginalTimestamp}, {kSentAt, &ev.SentAt}, {kReceivedAt, &ev.ReceivedAt}} {
		if p.present(c, f.k) {
			var err *FieldError
			if *f.dst, err = p.timestamp(c.v[f.k], keyNames[f.k]); err != nil {
				return nil, err
			}
		}
	}
	return ev, nil
}

// document validates body as one JSON object followed by nothing but
// whitespace, calling member for each of its top-level members. A nesting
// error names the field holding the deep value, at most depthSegs segments
// of its path ("properties" in a call, "batch[3].properties" in a batch).
func document(body []byte, depthSegs int, member func(key string, v span) error) (*parser, error) {
	p := &parser{s: string(body)}
	i := p.ws(0)
	if i >= len(p.s) || p.s[i] != '{' {
		return nil, &FieldError{Index: -1, Reason: "not a JSON object"}
	}
	end, err := p.object(i, member)
	switch {
	case errors.Is(err, errDepth):
		return nil, &FieldError{Index: -1, Field: jsonpos.Path(body, p.errAt, depthSegs),
			Reason: fmt.Sprintf("nested more than %d levels deep", maxDepth), err: ErrMalformed}
	case errors.Is(err, errUTF8):
		return nil, &FieldError{Index: -1, Field: jsonpos.Path(body, p.errAt, 0), Reason: "not valid UTF-8", err: ErrMalformed}
	case err != nil:
		return nil, &FieldError{Index: -1, Reason: "not a JSON object"}
	}
	// As json.Decoder.More, a closing bracket does not count as more data.
	if j := p.ws(end); j < len(p.s) && p.s[j] != ']' && p.s[j] != '}' {
		return nil, &FieldError{Index: -1, Reason: "trailing data after the JSON object"}
	}
	return p, nil
}

// DecodeCall decodes one call, the body of POST /v1/track, /v1/identify, ...
// typ is the call type from the endpoint ("track"); when typ is empty the
// body's "type" field decides (one line of an NDJSON export). When both are
// present they must agree.
func DecodeCall(typ string, body []byte) (*ingestionv1.Event, error) {
	var c call
	p, err := document(body, 1, c.member)
	if err != nil {
		return nil, err
	}
	ev, ferr := p.decode(&c, typ, nil)
	if ferr != nil {
		ferr.Index = -1
		return nil, ferr
	}
	return ev, nil
}

// DecodeBatch decodes the body of POST /v1/batch. The top-level "context" and
// "integrations" are merged into every item (the item's own keys win), and a
// top-level "sentAt" applies to items that have none. An item that fails to
// decode is reported in Batch.Errors and skipped, so that one bad event does
// not fail the batch; the returned error is non-nil only when the envelope
// itself is unusable. body is not retained.
func DecodeBatch(body []byte) (*Batch, error) {
	var top [5]span
	var has [5]bool
	const (
		tWriteKey = iota
		tContext
		tIntegrations
		tSentAt
		tBatch
	)
	p, err := document(body, 3, func(key string, v span) error {
		k := -1
		switch key {
		case "writeKey":
			k = tWriteKey
		case "context":
			k = tContext
		case "integrations":
			k = tIntegrations
		case "sentAt":
			k = tSentAt
		case "batch":
			k = tBatch
		}
		if k >= 0 {
			top[k], has[k] = v, true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b := &Batch{}
	if has[tWriteKey] {
		var ferr *FieldError
		if b.WriteKey, ferr = p.str(top[tWriteKey], "writeKey"); ferr != nil {
			return nil, ferr
		}
	}
	env := &envelope{}
	for _, t := range []struct {
		k     int
		name  string
		dst   *[]member
		has   *bool
		field string
	}{{tContext, "context", &env.ctx, &env.hasCtx, "context"}, {tIntegrations, "integrations", &env.integ, &env.hasInt, "integrations"}} {
		if !has[t.k] || p.isNull(top[t.k]) {
			continue
		}
		if p.s[top[t.k].a] != '{' {
			return nil, &FieldError{Index: -1, Field: t.field, Reason: "not a JSON object"}
		}
		ms, err := p.members(top[t.k])
		if err != nil {
			return nil, &FieldError{Index: -1, Field: t.field, Reason: "not a JSON object"}
		}
		*t.dst, *t.has = ms, len(ms) > 0
	}
	if has[tSentAt] {
		env.sentAt, env.hasSentAt = top[tSentAt], true
		if !p.isNull(top[tSentAt]) {
			if _, ferr := p.timestamp(top[tSentAt], "sentAt"); ferr != nil {
				return nil, ferr
			}
		}
	}
	if !has[tBatch] {
		return nil, &FieldError{Index: -1, Field: "batch", Reason: "missing"}
	}
	items := top[tBatch]
	if p.isNull(items) {
		return b, nil
	}
	if p.s[items.a] != '[' {
		return nil, &FieldError{Index: -1, Field: "batch", Reason: "not an array"}
	}
	var c call
	p.depth = 0
	_, err = p.array(items.a, func(i int, v span) error {
		prefix := func() string { return "batch[" + strconv.Itoa(i) + "]" }
		if p.s[v.a] != '{' {
			b.Errors = append(b.Errors, &FieldError{Index: i, Field: prefix(), Reason: "not a JSON object"})
			return nil
		}
		c = call{}
		depth := p.depth
		if _, err := p.object(v.a, c.member); err != nil {
			return err
		}
		ev, ferr := p.decode(&c, "", env)
		p.depth = depth
		if ferr != nil {
			ferr.Index = i
			ferr.Field = prefix() + "." + ferr.Field
			b.Errors = append(b.Errors, ferr)
			return nil
		}
		b.Events = append(b.Events, ev)
		b.Indexes = append(b.Indexes, i)
		return nil
	})
	if err != nil {
		// The whole body was validated by document; this is a bug, not input.
		return nil, fmt.Errorf("decode batch items: %w", err)
	}
	return b, nil
}
