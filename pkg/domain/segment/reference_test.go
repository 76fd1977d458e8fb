package segment

// The encoding/json implementation the hand-written decoder replaced, kept as
// the oracle of TestDecoderMatchesReference and FuzzDecoderMatchesReference.
// The decoder parts from it only where it names what it refuses (see
// sameErr): invalid UTF-8, which the oracle replaces by U+FFFD, refuses the
// document; nesting past the limit names the field; a number beyond float64
// names the property instead of "not a JSON object" of its object.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DecodeCall decodes one call, the body of POST /v1/track, /v1/identify, ...
// typ is the call type from the endpoint ("track"); when typ is empty the
// body's "type" field decides (one line of an NDJSON export). When both are
// present they must agree.
func refDecodeCall(typ string, body []byte) (*ingestionv1.Event, error) {
	obj, err := refObject(body, "")
	if err != nil {
		return nil, err
	}
	ev, ferr := refDecodeObject(obj, typ, "")
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
// itself is unusable.
func refDecodeBatch(body []byte) (*Batch, error) {
	obj, err := refObject(body, "")
	if err != nil {
		return nil, err
	}
	b := &Batch{}
	if raw, ok := obj["writeKey"]; ok {
		if b.WriteKey, err = refStr(raw, "writeKey"); err != nil {
			return nil, err
		}
	}
	var ctx, integ map[string]json.RawMessage
	if raw, ok := obj["context"]; ok && !refIsNull(raw) {
		if ctx, err = refObject(raw, "context"); err != nil {
			return nil, err
		}
	}
	if raw, ok := obj["integrations"]; ok && !refIsNull(raw) {
		if integ, err = refObject(raw, "integrations"); err != nil {
			return nil, err
		}
	}
	sentAt, hasSentAt := obj["sentAt"]
	if hasSentAt && !refIsNull(sentAt) {
		if _, err := refTimestamp(sentAt, "sentAt"); err != nil {
			return nil, err
		}
	}
	raw, ok := obj["batch"]
	if !ok {
		return nil, &FieldError{Index: -1, Field: "batch", Reason: "missing"}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &FieldError{Index: -1, Field: "batch", Reason: "not an array"}
	}
	for i, item := range items {
		prefix := "batch[" + strconv.Itoa(i) + "]"
		io, err := refObject(item, prefix)
		if err != nil {
			var fe *FieldError
			errors.As(err, &fe)
			fe.Index = i
			b.Errors = append(b.Errors, fe)
			continue
		}
		if ctx != nil {
			io["context"] = refMerge(ctx, io["context"])
		}
		if integ != nil {
			io["integrations"] = refMerge(integ, io["integrations"])
		}
		if _, ok := io["sentAt"]; !ok && hasSentAt {
			io["sentAt"] = sentAt
		}
		ev, ferr := refDecodeObject(io, "", prefix+".")
		if ferr != nil {
			ferr.Index = i
			b.Errors = append(b.Errors, ferr)
			continue
		}
		b.Events = append(b.Events, ev)
		b.Indexes = append(b.Indexes, i)
	}
	return b, nil
}

// merge returns the item's object with the batch-level keys it lacks added.
// A non-object item value is returned untouched so that decoding reports it.
func refMerge(top map[string]json.RawMessage, item json.RawMessage) json.RawMessage {
	if len(top) == 0 {
		return item
	}
	var own map[string]json.RawMessage
	if item != nil && !refIsNull(item) {
		if err := json.Unmarshal(item, &own); err != nil {
			return item
		}
	}
	out := make(map[string]json.RawMessage, len(top)+len(own))
	for k, v := range top {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	b, err := json.Marshal(out)
	if err != nil {
		return item
	}
	return b
}

// object decodes raw as a JSON object, naming field in the error.
func refObject(raw []byte, field string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "not a JSON object"}
	}
	if dec.More() {
		return nil, &FieldError{Index: -1, Field: field, Reason: "trailing data after the JSON object"}
	}
	return m, nil
}

// isNull reports a JSON null (or an absent value), which Segment treats as
// the field not being sent.
func refIsNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// decodeObject fills an Event from the fields of one call.
func refDecodeObject(obj map[string]json.RawMessage, typ, prefix string) (*ingestionv1.Event, *FieldError) {
	fail := func(err error) (*ingestionv1.Event, *FieldError) {
		var fe *FieldError
		if !errors.As(err, &fe) {
			fe = &FieldError{Reason: err.Error()}
		}
		fe.Field = prefix + fe.Field
		return nil, fe
	}
	ev := &ingestionv1.Event{}
	bodyType := ""
	if raw, ok := obj["type"]; ok && !refIsNull(raw) {
		s, err := refStr(raw, "type")
		if err != nil {
			return fail(err)
		}
		bodyType = s
	}
	name := typ
	switch {
	case typ == "" && bodyType == "":
		return fail(&FieldError{Field: "type", Reason: "missing"})
	case typ == "":
		name = bodyType
	case bodyType != "" && !strings.EqualFold(bodyType, typ):
		return fail(&FieldError{Field: "type", Reason: fmt.Sprintf("%q does not match the endpoint's %q", bodyType, typ)})
	}
	t, ok := ParseType(name)
	if !ok {
		return fail(&FieldError{Field: "type", Reason: fmt.Sprintf("unknown call type %q", truncate(name))})
	}
	ev.Type = t

	strs := []struct {
		key string
		dst *string
		id  bool // ids may be JSON numbers: some SDKs send numeric user ids
	}{
		{"messageId", &ev.MessageId, true},
		{"userId", &ev.UserId, true},
		{"anonymousId", &ev.AnonymousId, true},
		{"groupId", &ev.GroupId, true},
		{"previousId", &ev.PreviousId, true},
		{"event", &ev.Event, false},
		{"name", &ev.Name, false},
	}
	for _, s := range strs {
		raw, ok := obj[s.key]
		if !ok || refIsNull(raw) {
			continue
		}
		var err error
		if s.id {
			*s.dst, err = refId(raw, s.key)
		} else {
			*s.dst, err = refStr(raw, s.key)
		}
		if err != nil {
			return fail(err)
		}
	}
	structs := []struct {
		key string
		dst **structpb.Struct
	}{
		{"properties", &ev.Properties},
		{"traits", &ev.Traits},
		{"context", &ev.Context},
		{"integrations", &ev.Integrations},
	}
	for _, s := range structs {
		raw, ok := obj[s.key]
		if !ok || refIsNull(raw) {
			continue
		}
		v, err := refStructValue(raw, s.key)
		if err != nil {
			return fail(err)
		}
		*s.dst = v
	}
	times := []struct {
		key string
		dst **timestamppb.Timestamp
	}{
		{"timestamp", &ev.Timestamp},
		{"originalTimestamp", &ev.OriginalTimestamp},
		{"sentAt", &ev.SentAt},
		{"receivedAt", &ev.ReceivedAt},
	}
	for _, s := range times {
		raw, ok := obj[s.key]
		if !ok || refIsNull(raw) {
			continue
		}
		v, err := refTimestamp(raw, s.key)
		if err != nil {
			return fail(err)
		}
		*s.dst = v
	}
	return ev, nil
}

func refStr(raw json.RawMessage, field string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FieldError{Index: -1, Field: field, Reason: "not a string"}
	}
	return s, nil
}

// id accepts a string or an integral JSON number and returns it as text.
func refId(raw json.RawMessage, field string) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil {
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			if _, err := x.Int64(); err == nil {
				return x.String(), nil
			}
		}
	}
	return "", &FieldError{Index: -1, Field: field, Reason: "not a string or integer"}
}

func refStructValue(raw json.RawMessage, field string) (*structpb.Struct, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "not a JSON object"}
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: err.Error()}
	}
	return s, nil
}

func refTimestamp(raw json.RawMessage, field string) (*timestamppb.Timestamp, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "not a string"}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "not RFC 3339"}
	}
	ts := timestamppb.New(t)
	if err := ts.CheckValid(); err != nil {
		return nil, &FieldError{Index: -1, Field: field, Reason: "out of range"}
	}
	return ts, nil
}

// sameResult compares the hand-written decoder's answer with the reference's.
func sameCall(t *testing.T, typ string, body []byte) {
	t.Helper()
	got, gerr := DecodeCall(typ, body)
	if !utf8.Valid(body) && errors.Is(gerr, ErrMalformed) {
		return // the reference would have replaced it by U+FFFD
	}
	want, werr := refDecodeCall(typ, body)
	if !sameErr(gerr, werr) {
		t.Fatalf("DecodeCall(%q, %q) error = %v, reference %v", typ, body, gerr, werr)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("DecodeCall(%q, %q) =\n%v\nreference\n%v", typ, body, got, want)
	}
}

func sameBatch(t *testing.T, body []byte) {
	t.Helper()
	got, gerr := DecodeBatch(body)
	if !utf8.Valid(body) && errors.Is(gerr, ErrMalformed) {
		return // the reference would have replaced it by U+FFFD
	}
	want, werr := refDecodeBatch(body)
	if !sameErr(gerr, werr) {
		t.Fatalf("DecodeBatch(%q) error = %v, reference %v", body, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if got.WriteKey != want.WriteKey || !equalInts(got.Indexes, want.Indexes) || len(got.Events) != len(want.Events) || len(got.Errors) != len(want.Errors) {
		t.Fatalf("DecodeBatch(%q) = %+v, reference %+v", body, got, want)
	}
	for i := range got.Events {
		if !proto.Equal(got.Events[i], want.Events[i]) {
			t.Fatalf("DecodeBatch(%q) event %d =\n%v\nreference\n%v", body, i, got.Events[i], want.Events[i])
		}
	}
	for i := range got.Errors {
		if !sameErr(got.Errors[i], want.Errors[i]) {
			t.Fatalf("DecodeBatch(%q) error %d = %+v, reference %+v", body, i, got.Errors[i], want.Errors[i])
		}
	}
}

// sameErr reports whether the decoder's error a matches the reference's b:
// equal, or one of the refusals the decoder names more precisely.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var fa, fb *FieldError
	if !errors.As(a, &fa) || !errors.As(b, &fb) {
		return false
	}
	switch {
	case errors.Is(fa, ErrMalformed):
		// Nesting past the limit: the reference refuses the document.
		return fb.Index == -1 && fb.Field == "" && fb.Reason == "not a JSON object" && strings.HasPrefix(fa.Reason, "nested more than")
	case strings.HasPrefix(fa.Reason, "number ") && strings.HasSuffix(fa.Reason, "out of range (more than a 64-bit float holds)"):
		// The reference names the struct field holding the number.
		return fa.Index == fb.Index && fb.Reason == "not a JSON object" &&
			(strings.HasPrefix(fa.Field, fb.Field+".") || strings.HasPrefix(fa.Field, fb.Field+"["))
	}
	return fa.Index == fb.Index && fa.Field == fb.Field && fa.Reason == fb.Reason
}

var referenceCases = []string{
	`{"type":"track","event":"e","userId":12,"anonymousId":-3,"groupId":"g","previousId":"p"}`,
	`{"type":"track","userId":1.5}`, `{"type":"track","userId":1e3}`, `{"type":"track","userId":99999999999999999999}`,
	`{"type":"track","userId":true}`, `{"type":"track","event":5}`, `{"type":5}`, `{"type":"TRACK"}`, `{"type":"nope"}`,
	`{"type":null,"event":null}`, `{"type":"track","type":"page"}`,
	`{"type":"track","properties":{"a":1e999}}`, `{"type":"track","properties":{"a":1e-999,"b":-0}}`,
	`{"type":"track","properties":{"a":1e999,"a":1}}`, `{"type":"track","properties":{"k":1,"k":{"x":[1,2,{"y":null}]}}}`,
	`{"type":"track","properties":[]}`, `{"type":"track","properties":null,"traits":"x"}`,
	`{"type":"track","properties":{"s":"a\u00e9\ud83d\ude00\ud800x\n\t\"\\\/\b\f\r","\u0041":"\xff\xfe"}}`,
	`{"typ\u0065":"track","ev\u0065nt":"\u00e9"}`, "{\"type\":\"track\",\"event\":\"\xc3\x28\"}",
	`{"type":"track","timestamp":"2026-11-20T10:00:00+01:00","sentAt":"x"}`, `{"type":"track","timestamp":5}`,
	`{"type":"track","receivedAt":"10000-01-01T00:00:00Z"}`, `{"type":"track","sentAt":"0000-01-01T00:00:00Z"}`,
	`{"type":"track","originalTimestamp":"2026-11-20T10:00:00.123456789Z"}`,
	`{}`, `{} `, `{}]`, `{}}`, `{} x`, `{}{}`, ``, `  `, `null`, `[]`, `1`, `"s"`, `{`, `{"a":}`, `{"a":1,}`, `{"a" 1}`,
	`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}",
	` {"type":"track"} `, "\t{\"type\":\"track\"}\n\r",
	`{"batch":[{"type":"track","context":{"a":1,"b":2}},{"type":"page","context":null},{"type":"identify","context":"x"},{"type":"group","context":[1]}],"context":{"b":3,"c":4}}`,
	`{"batch":[{"type":"track","context":{"bad":1e999}},{"type":"track"}],"context":{"bad":1,"x":1e999}}`,
	`{"batch":[{"type":"track","context":{"x":2}}],"context":{"x":1e999}}`,
	`{"batch":[{"type":"track","context":{"x":2,"x":1e999}}],"context":{"y":1}}`,
	`{"batch":[{"type":"track","context":{"x":1e999,"x":2}}],"context":{"y":1}}`,
	`{"batch":[{"type":"track","context":{"x":1e999,"x":2}}]}`,
	`{"batch":[{"type":"track"}],"context":{"x":1,"x":2},"integrations":{"All":false}}`,
	`{"batch":[{"type":"track"}],"context":{},"integrations":{}}`,
	`{"batch":[{"type":"track","integrations":5}],"integrations":{}}`,
	`{"batch":[{"type":"track","integrations":5}],"integrations":{"a":1}}`,
	`{"batch":[{"type":"track"},{"type":"track","sentAt":null},{"type":"track","sentAt":"2026-01-01T00:00:00Z"}],"sentAt":"2026-11-20T10:00:00Z"}`,
	`{"batch":[{"type":"track"}],"sentAt":null}`, `{"batch":[{"type":"track"}],"sentAt":"x"}`, `{"batch":[],"sentAt":5}`,
	`{"batch":null}`, `{"batch":{}}`, `{"batch":"x"}`, `{}`, `{"batch":[1,null,[],"x",true,{}]}`,
	`{"batch":[],"writeKey":null}`, `{"batch":[],"writeKey":5}`, `{"batch":[],"writeKey":"k\u0041"}`,
	`{"batch":[],"context":5}`, `{"batch":[],"context":[]}`, `{"batch":[],"integrations":"x"}`,
	`{"batch":[],"context":null,"integrations":null}`, `{"batch":[{"type":"track"}],"batch":[{"type":"page"}]}`,
	`{"batch":[{"type":"track","properties":{"a":1}},{"type":"track","timestamp":"bad"}]} ]`,
	`{"batch":[{"type":"track"}]} x`, `{"batch":[{"type":"track",}]}`,
	`{"context":{"a":1},"batch":[{"type":"track"}],"sentAt":"2026-11-20T10:00:00Z","integrations":{"b":2}}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"batch":[{"type":"track","properties":` + strings.Repeat(`{"a":`, 9997) + `1` + strings.Repeat(`}`, 9997) + `}]}`,
	`{"batch":[{"type":"track","properties":` + strings.Repeat(`{"a":`, 9998) + `1` + strings.Repeat(`}`, 9998) + `}]}`,
	`{"type":"track","properties":` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `}`,
	`{"type":"track","properties":{"a":` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `}}`,
	`{"type":"track","properties":{"a":` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `}}`,
}

func TestDecoderMatchesReference(t *testing.T) {
	seed, err := os.ReadFile("testdata/batch.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := append([]string{string(seed)}, referenceCases...)
	for _, c := range cases {
		sameBatch(t, []byte(c))
		for _, typ := range []string{"", "track", "Page", "bogus"} {
			sameCall(t, typ, []byte(c))
		}
	}
}

func FuzzDecoderMatchesReference(f *testing.F) {
	for _, c := range referenceCases {
		if len(c) < 1000 {
			f.Add("", []byte(c))
		}
	}
	seed, err := os.ReadFile("testdata/batch.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("track", seed)
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		sameBatch(t, body)
		sameCall(t, typ, body)
	})
}
