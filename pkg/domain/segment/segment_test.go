package segment

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

func st(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func TestDecodeCall(t *testing.T) {
	tests := []struct {
		name      string
		typ       string
		body      string
		want      *ingestionv1.Event
		wantField string // non-empty: decoding must fail naming this field
	}{
		{
			name: "track with every common field",
			typ:  "track",
			body: `{"messageId":"m1","userId":"u1","anonymousId":"a1","event":"crm.mql",
				"properties":{"score":80,"tags":["a",true,null]},"context":{"groupId":"acme"},
				"integrations":{"All":false},"timestamp":"2026-11-20T10:00:00Z",
				"originalTimestamp":"2026-11-20T09:59:59.5Z","sentAt":"2026-11-20T10:00:01+01:00",
				"receivedAt":"2026-11-20T10:00:02Z","unknownField":1}`,
			want: &ingestionv1.Event{
				Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: "m1", UserId: "u1", AnonymousId: "a1",
				Event:             "crm.mql",
				Properties:        st(map[string]any{"score": 80.0, "tags": []any{"a", true, nil}}),
				Context:           st(map[string]any{"groupId": "acme"}),
				Integrations:      st(map[string]any{"All": false}),
				Timestamp:         ts("2026-11-20T10:00:00Z"),
				OriginalTimestamp: ts("2026-11-20T09:59:59.5Z"),
				SentAt:            ts("2026-11-20T09:00:01Z"),
				ReceivedAt:        ts("2026-11-20T10:00:02Z"),
			},
		},
		{
			name: "type from the body",
			body: `{"type":"Group","userId":"u1","groupId":"acme","traits":{"name":"Acme"}}`,
			want: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: "u1", GroupId: "acme",
				Traits: st(map[string]any{"name": "Acme"})},
		},
		{
			name: "numeric ids and nulls",
			typ:  "alias",
			body: `{"userId":1234,"previousId":"anon-1","context":null,"timestamp":null}`,
			want: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "1234", PreviousId: "anon-1"},
		},
		{name: "page name", typ: "page", body: `{"anonymousId":"a","name":"Pricing"}`,
			want: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, AnonymousId: "a", Name: "Pricing"}},
		{name: "not json", typ: "track", body: `{"userId":`, wantField: ""},
		{name: "array body", typ: "track", body: `[1]`, wantField: ""},
		{name: "trailing data", typ: "track", body: `{"userId":"u"} {}`, wantField: ""},
		{name: "missing type", body: `{"userId":"u"}`, wantField: "type"},
		{name: "unknown type", body: `{"type":"teleport"}`, wantField: "type"},
		{name: "type mismatch", typ: "track", body: `{"type":"identify"}`, wantField: "type"},
		{name: "bad timestamp", typ: "track", body: `{"timestamp":"2026-11-20 10:00"}`, wantField: "timestamp"},
		{name: "timestamp not string", typ: "track", body: `{"sentAt":17}`, wantField: "sentAt"},
		{name: "year out of range", typ: "track", body: `{"receivedAt":"0000-01-01T00:00:00Z"}`, wantField: "receivedAt"},
		{name: "properties not object", typ: "track", body: `{"properties":[1]}`, wantField: "properties"},
		{name: "fractional user id", typ: "track", body: `{"userId":1.5}`, wantField: "userId"},
		{name: "event not string", typ: "track", body: `{"event":{}}`, wantField: "event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeCall(tc.typ, []byte(tc.body))
			if tc.want == nil {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("DecodeCall() err = %v, want a *FieldError", err)
				}
				if fe.Field != tc.wantField {
					t.Errorf("field = %q, want %q (err %v)", fe.Field, tc.wantField, err)
				}
				if fe.Reason == "" {
					t.Error("empty reason")
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeCall() = %v", err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("DecodeCall() =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestDecodeBatch(t *testing.T) {
	body, err := os.ReadFile("testdata/batch.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBatch(body)
	if err != nil {
		t.Fatalf("DecodeBatch() = %v", err)
	}
	if b.WriteKey != "wk_test" {
		t.Errorf("WriteKey = %q", b.WriteKey)
	}
	if got, want := b.Indexes, []int{0, 1, 5}; !equalInts(got, want) {
		t.Fatalf("Indexes = %v, want %v", got, want)
	}
	wantErrs := []string{"batch[2].timestamp: not RFC 3339", "batch[3]: not a JSON object", "batch[4].type: unknown call type \"teleport\""}
	if len(b.Errors) != len(wantErrs) {
		t.Fatalf("Errors = %v, want %v", b.Errors, wantErrs)
	}
	for i, e := range b.Errors {
		if e.Error() != wantErrs[i] {
			t.Errorf("Errors[%d] = %q, want %q", i, e.Error(), wantErrs[i])
		}
		if e.Index != i+2 {
			t.Errorf("Errors[%d].Index = %d, want %d", i, e.Index, i+2)
		}
	}
	// Top-level context merges under the item's own keys.
	if got := b.Events[0].GetContext().GetFields()["groupId"].GetStringValue(); got != "acme" {
		t.Errorf("batch[0] context.groupId = %q, want acme", got)
	}
	if got := b.Events[1].GetContext().GetFields()["groupId"].GetStringValue(); got != "globex" {
		t.Errorf("batch[1] context.groupId = %q, want globex (item wins)", got)
	}
	if b.Events[1].GetContext().GetFields()["library"] == nil {
		t.Error("batch[1] lost the top-level context.library")
	}
	if !b.Events[2].GetIntegrations().GetFields()["All"].GetBoolValue() {
		t.Error("batch[5] lost the top-level integrations")
	}
	// Top-level sentAt applies unless the item has its own.
	if got := b.Events[0].GetSentAt().AsTime(); !got.Equal(ts("2026-11-20T10:00:05Z").AsTime()) {
		t.Errorf("batch[0] sentAt = %v", got)
	}
	if got := b.Events[2].GetSentAt().AsTime(); !got.Equal(ts("2026-11-20T10:00:09Z").AsTime()) {
		t.Errorf("batch[5] sentAt = %v", got)
	}
	if b.Events[2].GetUserId() != "42" {
		t.Errorf("batch[5] userId = %q", b.Events[2].GetUserId())
	}
}

func TestDecodeBatchEnvelope(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"not an object", `"x"`, "not a JSON object"},
		{"missing batch", `{}`, "batch: missing"},
		{"batch not array", `{"batch":{}}`, "batch: not an array"},
		{"bad context", `{"batch":[],"context":7}`, "context: not a JSON object"},
		{"bad integrations", `{"batch":[],"integrations":"x"}`, "integrations: not a JSON object"},
		{"bad sentAt", `{"batch":[],"sentAt":"now"}`, "sentAt: not RFC 3339"},
		{"bad writeKey", `{"batch":[],"writeKey":1}`, "writeKey: not a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch([]byte(tc.body))
			if err == nil || err.Error() != tc.want {
				t.Errorf("DecodeBatch() err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ev   *ingestionv1.Event
	}{
		{"track", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: "m", UserId: "u",
			Event: "billing.renewed", Properties: st(map[string]any{"arr": 1200.5, "nested": map[string]any{"a": []any{1.0}}}),
			Timestamp: ts("2026-01-02T03:04:05.123456789Z"), SentAt: ts("2026-01-02T03:04:06Z"),
			OriginalTimestamp: ts("2026-01-02T03:04:05Z"), ReceivedAt: ts("2026-01-02T03:04:07Z")}},
		{"identify", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, AnonymousId: "a",
			Traits: st(map[string]any{"email": "x@y.z"}), Context: st(map[string]any{"ip": "1.2.3.4"}),
			Integrations: st(map[string]any{"All": true})}},
		{"alias", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "u", PreviousId: "p"}},
		{"screen", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_SCREEN, UserId: "u", Name: "Home"}},
		{"group", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: "u", GroupId: "g"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.ev)
			if err != nil {
				t.Fatalf("Encode() = %v", err)
			}
			got, err := DecodeCall("", b)
			if err != nil {
				t.Fatalf("DecodeCall(Encode()) = %v\n%s", err, b)
			}
			if !proto.Equal(got, tc.ev) {
				t.Errorf("round trip =\n%v\nwant\n%v", got, tc.ev)
			}
		})
	}
}

func TestEncodeUnknownType(t *testing.T) {
	if _, err := Encode(&ingestionv1.Event{}); err == nil {
		t.Error("Encode(unspecified type) succeeded")
	}
}

func TestWriteKey(t *testing.T) {
	if got := WriteKey([]byte(`{"writeKey":"k","userId":"u"}`)); got != "k" {
		t.Errorf("WriteKey() = %q", got)
	}
	if got := WriteKey([]byte(`[`)); got != "" {
		t.Errorf("WriteKey(garbage) = %q", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkFieldError fails unless err is nil or a *FieldError with a reason.
func checkFieldError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Reason == "" {
		t.Fatalf("error %v is not a *FieldError with a reason", err)
	}
	if !utf8.ValidString(fe.Field) || !utf8.ValidString(fe.Reason) {
		t.Fatalf("error %q is not valid UTF-8", fe)
	}
	if errors.Is(err, ErrMalformed) && fe.Field == "" {
		t.Fatalf("malformed JSON refused without naming where: %v", fe)
	}
}

func FuzzDecodeCall(f *testing.F) {
	f.Add("track", []byte(`{"userId":"u","event":"e","properties":{"a":[1,{"b":null}]},"timestamp":"2026-11-20T10:00:00Z"}`))
	f.Add("", []byte(`{"type":"group","userId":7,"groupId":"g"}`))
	f.Add("identify", []byte(`{"traits":"x"}`))
	f.Add("page", []byte(`null`))
	f.Add("", []byte(`{"type":"track","sentAt":"9999-12-31T23:59:59Z"}`))
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		ev, err := DecodeCall(typ, body)
		checkFieldError(t, err)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same event.
		b, err := Encode(ev)
		if err != nil {
			t.Fatalf("Encode(decoded) = %v", err)
		}
		again, err := DecodeCall("", b)
		if err != nil {
			t.Fatalf("DecodeCall(Encode()) = %v\n%s", err, b)
		}
		if !proto.Equal(ev, again) {
			t.Fatalf("round trip changed the event:\n%v\n%v", ev, again)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	seed, err := os.ReadFile("testdata/batch.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"batch":[{"type":"track"},1,null,[]],"context":{"a":1}}`))
	f.Add([]byte(`{"batch":[{"type":"alias","context":5}],"context":{"a":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBatch(body)
		checkFieldError(t, err)
		if err != nil {
			return
		}
		if len(b.Events) != len(b.Indexes) {
			t.Fatalf("%d events but %d indexes", len(b.Events), len(b.Indexes))
		}
		for _, e := range b.Errors {
			if !strings.HasPrefix(e.Field, "batch[") {
				t.Fatalf("item error %q does not name its batch index", e)
			}
		}
	})
}

func TestDecodeBatchWithoutTopLevelFields(t *testing.T) {
	b, err := DecodeBatch([]byte(`{"batch":[{"type":"track","userId":"u","event":"e","context":{"ip":"1.2.3.4"}}]}`))
	if err != nil || len(b.Errors) != 0 || len(b.Events) != 1 {
		t.Fatalf("DecodeBatch() = %+v, %v", b, err)
	}
	if b.Events[0].GetIntegrations() != nil || b.Events[0].GetContext().GetFields()["ip"].GetStringValue() != "1.2.3.4" {
		t.Errorf("event = %v", b.Events[0])
	}
}

// TestHostileInput: what the decoder refuses, it refuses by name. Invalid
// UTF-8 and nesting past the limit refuse the document (ErrMalformed); a
// number beyond float64 rejects its call, naming the property.
func TestHostileInput(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	tests := []struct {
		name      string
		batch     bool
		body      string
		field     string
		reason    string
		malformed bool
	}{
		{name: "number out of range", body: `{"type":"track","properties":{"seats":1e400}}`,
			field: "properties.seats", reason: "number 1e400 is out of range (more than a 64-bit float holds)"},
		{name: "negative number out of range in a list", body: `{"type":"track","traits":{"l":[1,{"x":-2e999}]}}`,
			field: "traits.l[1].x", reason: "number -2e999 is out of range (more than a 64-bit float holds)"},
		{name: "number out of range in a batch item", batch: true,
			body:  `{"batch":[{"type":"track"},{"type":"track","properties":{"n":1e400}}]}`,
			field: "batch[1].properties.n", reason: "number 1e400 is out of range (more than a 64-bit float holds)"},
		{name: "number out of range in the batch context", batch: true,
			body:  `{"batch":[{"type":"track"}],"context":{"n":1e400}}`,
			field: "batch[0].context.n", reason: "number 1e400 is out of range (more than a 64-bit float holds)"},
		{name: "properties nested 10,000 deep", body: `{"type":"track","properties":` + deep(10000) + `}`,
			field: "properties", reason: "nested more than 10000 levels deep", malformed: true},
		{name: "batch item nested 10,000 deep", batch: true, body: `{"batch":[{},{"type":"track","context":` + deep(10000) + `}]}`,
			field: "batch[1].context", reason: "nested more than 10000 levels deep", malformed: true},
		{name: "invalid UTF-8 in a property", body: "{\"type\":\"track\",\"properties\":{\"plan\":\"pro\xff\"}}",
			field: "properties.plan", reason: "not valid UTF-8", malformed: true},
		{name: "invalid UTF-8 in a key", body: "{\"type\":\"track\",\"properties\":{\"pl\xc3\x28an\":1}}",
			field: "properties.pl\uFFFD(an", reason: "not valid UTF-8", malformed: true},
		{name: "invalid UTF-8 in the event name", body: "{\"type\":\"track\",\"event\":\"\xed\xa0\x80\"}",
			field: "event", reason: "not valid UTF-8", malformed: true},
		{name: "invalid UTF-8 in a batch item", batch: true, body: "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\xfe\"}]}",
			field: "batch[0].userId", reason: "not valid UTF-8", malformed: true},
		{name: "invalid UTF-8 in an ignored field", body: "{\"type\":\"track\",\"other\":[\"\xff\"]}",
			field: "other[0]", reason: "not valid UTF-8", malformed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.batch {
				var b *Batch
				b, err = DecodeBatch([]byte(tc.body))
				if err == nil {
					if len(b.Errors) != 1 {
						t.Fatalf("DecodeBatch() = %+v, want one item error", b)
					}
					err = b.Errors[0]
				}
			} else {
				_, err = DecodeCall("", []byte(tc.body))
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error = %v, want a *FieldError", err)
			}
			if fe.Field != tc.field || fe.Reason != tc.reason {
				t.Errorf("error = %q: %q, want %q: %q", fe.Field, fe.Reason, tc.field, tc.reason)
			}
			if errors.Is(err, ErrMalformed) != tc.malformed {
				t.Errorf("errors.Is(ErrMalformed) = %t, want %t", !tc.malformed, tc.malformed)
			}
		})
	}
}

func TestEscapedSurrogatesAreNotInvalidUTF8(t *testing.T) {
	// A lone surrogate escape is valid JSON text; as encoding/json, the
	// decoder replaces it.
	ev, err := DecodeCall("track", []byte(`{"event":"a\ud800b"}`))
	if err != nil || ev.GetEvent() != "a\uFFFDb" {
		t.Fatalf("DecodeCall() = %v, %v", ev, err)
	}
}
