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
	"encoding/json"
	"fmt"
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
	// err is ErrMalformed when the JSON text itself is refused.
	err error
}

// Error formats the error as "field: reason".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap returns ErrMalformed for errors about the JSON text itself.
func (e *FieldError) Unwrap() error { return e.err }

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
