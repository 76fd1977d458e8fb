// Package segment converts between Segment-spec tracking JSON and Cairn's
// ingestionv1.Event.
//
// It is the one place that knows Segment's wire format, so that the gateway's
// HTTP tracking API, the CLI's NDJSON import and tests all agree on it. Field
// names are matched exactly as Segment spells them (camelCase: messageId,
// anonymousId, userId, groupId, previousId, originalTimestamp, sentAt, ...);
// unknown top-level fields are ignored, as Segment's own API does.
//
// Decoding checks only the shape of the JSON (types, RFC 3339 timestamps);
// limits and the rules of the reserved event names belong to the ingestion
// service's validation. Every decoding error is a *FieldError naming the field.
package segment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FieldError is a decoding error for one field of one call.
type FieldError struct {
	// Index is the position of the call in a batch, or -1 outside a batch.
	Index int
	// Field is the path of the offending field, e.g. "batch[3].timestamp" in a
	// batch or "timestamp" for a single call. Empty means the whole document.
	Field string
	// Reason says what is wrong, e.g. "not RFC 3339".
	Reason string
}

// Error formats the error as "field: reason".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Batch is a decoded Segment batch request (POST /v1/batch).
type Batch struct {
	// Events holds the calls that decoded, in request order.
	Events []*ingestionv1.Event
	// Indexes[i] is the position in the request's "batch" array of Events[i],
	// so that callers can report results against the caller's numbering.
	Indexes []int
	// Errors lists the calls that failed to decode; they are absent from Events.
	Errors []*FieldError
	// WriteKey is the "writeKey" of the body, if any (Segment SDKs may send the
	// key in the body instead of the Authorization header).
	WriteKey string
}

// typeNames maps Segment's "type" values to event types.
var typeNames = map[string]ingestionv1.EventType{
	"track":    ingestionv1.EventType_EVENT_TYPE_TRACK,
	"identify": ingestionv1.EventType_EVENT_TYPE_IDENTIFY,
	"group":    ingestionv1.EventType_EVENT_TYPE_GROUP,
	"page":     ingestionv1.EventType_EVENT_TYPE_PAGE,
	"screen":   ingestionv1.EventType_EVENT_TYPE_SCREEN,
	"alias":    ingestionv1.EventType_EVENT_TYPE_ALIAS,
}

// ParseType returns the event type for a Segment call name such as "track".
// Matching ignores case, as Segment's endpoints do.
func ParseType(name string) (ingestionv1.EventType, bool) {
	t, ok := typeNames[strings.ToLower(name)]
	return t, ok
}

// TypeName returns the Segment call name of t, or "" for an unknown type.
func TypeName(t ingestionv1.EventType) string {
	switch t {
	case ingestionv1.EventType_EVENT_TYPE_TRACK:
		return "track"
	case ingestionv1.EventType_EVENT_TYPE_IDENTIFY:
		return "identify"
	case ingestionv1.EventType_EVENT_TYPE_GROUP:
		return "group"
	case ingestionv1.EventType_EVENT_TYPE_PAGE:
		return "page"
	case ingestionv1.EventType_EVENT_TYPE_SCREEN:
		return "screen"
	case ingestionv1.EventType_EVENT_TYPE_ALIAS:
		return "alias"
	}
	return ""
}

// DecodeCall decodes one call, the body of POST /v1/track, /v1/identify, ...
// typ is the call type from the endpoint ("track"); when typ is empty the
// body's "type" field decides (one line of an NDJSON export). When both are
// present they must agree.
func DecodeCall(typ string, body []byte) (*ingestionv1.Event, error) {
	obj, err := object(body, "")
	if err != nil {
		return nil, err
	}
	ev, ferr := decodeObject(obj, typ, "")
	if ferr != nil {
		ferr.Index = -1
		return nil, ferr
	}
	return ev, nil
}

// WriteKey returns the "writeKey" field of a single call's body, or "" when
// it has none or the body is not a JSON object.
func WriteKey(body []byte) string {
	var v struct {
		WriteKey string `json:"writeKey"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.WriteKey
}

// DecodeBatch decodes the body of POST /v1/batch. The top-level "context" and
// "integrations" are merged into every item (the item's own keys win), and a
// top-level "sentAt" applies to items that have none. An item that fails to
// decode is reported in Batch.Errors and skipped, so that one bad event does
// not fail the batch; the returned error is non-nil only when the envelope
// itself is unusable.
func DecodeBatch(body []byte) (*Batch, error) {
	obj, err := object(body, "")
	if err != nil {
		return nil, err
	}
	b := &Batch{}
	if raw, ok := obj["writeKey"]; ok {
		if b.WriteKey, err = str(raw, "writeKey"); err != nil {
			return nil, err
		}
	}
	var ctx, integ map[string]json.RawMessage
	if raw, ok := obj["context"]; ok && !isNull(raw) {
		if ctx, err = object(raw, "context"); err != nil {
			return nil, err
		}
	}
	if raw, ok := obj["integrations"]; ok && !isNull(raw) {
		if integ, err = object(raw, "integrations"); err != nil {
			return nil, err
		}
	}
	sentAt, hasSentAt := obj["sentAt"]
	if hasSentAt && !isNull(sentAt) {
		if _, err := timestamp(sentAt, "sentAt"); err != nil {
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
		io, err := object(item, prefix)
		if err != nil {
			var fe *FieldError
			errors.As(err, &fe)
			fe.Index = i
			b.Errors = append(b.Errors, fe)
			continue
		}
		if ctx != nil {
			io["context"] = merge(ctx, io["context"])
		}
		if integ != nil {
			io["integrations"] = merge(integ, io["integrations"])
		}
		if _, ok := io["sentAt"]; !ok && hasSentAt {
			io["sentAt"] = sentAt
		}
		ev, ferr := decodeObject(io, "", prefix+".")
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
func merge(top map[string]json.RawMessage, item json.RawMessage) json.RawMessage {
	if len(top) == 0 {
		return item
	}
	var own map[string]json.RawMessage
	if item != nil && !isNull(item) {
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
func object(raw []byte, field string) (map[string]json.RawMessage, error) {
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
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// decodeObject fills an Event from the fields of one call.
func decodeObject(obj map[string]json.RawMessage, typ, prefix string) (*ingestionv1.Event, *FieldError) {
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
	if raw, ok := obj["type"]; ok && !isNull(raw) {
		s, err := str(raw, "type")
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
		if !ok || isNull(raw) {
			continue
		}
		var err error
		if s.id {
			*s.dst, err = id(raw, s.key)
		} else {
			*s.dst, err = str(raw, s.key)
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
		if !ok || isNull(raw) {
			continue
		}
		v, err := structValue(raw, s.key)
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
		if !ok || isNull(raw) {
			continue
		}
		v, err := timestamp(raw, s.key)
		if err != nil {
			return fail(err)
		}
		*s.dst = v
	}
	return ev, nil
}

func str(raw json.RawMessage, field string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FieldError{Index: -1, Field: field, Reason: "not a string"}
	}
	return s, nil
}

// id accepts a string or an integral JSON number and returns it as text.
func id(raw json.RawMessage, field string) (string, error) {
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

func structValue(raw json.RawMessage, field string) (*structpb.Struct, error) {
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

func timestamp(raw json.RawMessage, field string) (*timestamppb.Timestamp, error) {
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

func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Encode renders ev as a Segment call (the format DecodeCall reads with an
// empty typ). Server-derived fields (account, source, flags, workspace) are
// not part of the Segment spec and are left out.
func Encode(ev *ingestionv1.Event) ([]byte, error) {
	out := make(map[string]any, 16)
	name := TypeName(ev.GetType())
	if name == "" {
		return nil, fmt.Errorf("encode event %q: unknown type %v", ev.GetMessageId(), ev.GetType())
	}
	out["type"] = name
	for _, f := range []struct {
		key, val string
	}{
		{"messageId", ev.GetMessageId()},
		{"userId", ev.GetUserId()},
		{"anonymousId", ev.GetAnonymousId()},
		{"groupId", ev.GetGroupId()},
		{"previousId", ev.GetPreviousId()},
		{"event", ev.GetEvent()},
		{"name", ev.GetName()},
	} {
		if f.val != "" {
			out[f.key] = f.val
		}
	}
	for _, f := range []struct {
		key string
		val *structpb.Struct
	}{
		{"properties", ev.GetProperties()},
		{"traits", ev.GetTraits()},
		{"context", ev.GetContext()},
		{"integrations", ev.GetIntegrations()},
	} {
		if f.val != nil {
			out[f.key] = f.val.AsMap()
		}
	}
	for _, f := range []struct {
		key string
		val *timestamppb.Timestamp
	}{
		{"timestamp", ev.GetTimestamp()},
		{"originalTimestamp", ev.GetOriginalTimestamp()},
		{"sentAt", ev.GetSentAt()},
		{"receivedAt", ev.GetReceivedAt()},
	} {
		if f.val != nil {
			out[f.key] = f.val.AsTime().UTC().Format(time.RFC3339Nano)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode event %q: %w", ev.GetMessageId(), err)
	}
	return b, nil
}
