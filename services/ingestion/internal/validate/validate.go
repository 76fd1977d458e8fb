// Package validate checks events against Cairn's ingestion contract and fills
// in what the server derives from them: the clock-skew-corrected event time,
// the source, and flags.
//
// It is pure: time comes in as an argument and nothing is stored, so the rules
// can be table-tested and fuzzed. Every problem is reported as a *FieldError
// whose Field is the proto field path relative to the event (for example
// "properties.seats"); the server prefixes it with "events[i].".
package validate

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store/wire"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FlagFutureTimestamp marks an event whose time is further in the future than
// Limits.MaxSkew. The time is kept as sent: historical imports and clocks that
// are slightly off are the caller's business, but downstream rules may want to
// distrust such events.
const FlagFutureTimestamp = "future_timestamp"

// Limits bounds what one event and one batch may hold.
type Limits struct {
	// MaxEventBytes bounds the protobuf size of one event.
	MaxEventBytes int
	// MaxBatchBytes bounds the protobuf size of one IngestRequest.
	MaxBatchBytes int
	// MaxBatchEvents bounds the number of events of one IngestRequest.
	MaxBatchEvents int
	// MaxMessageIDLen bounds message_id, in characters.
	MaxMessageIDLen int
	// MaxIDLen bounds user_id, anonymous_id, group_id and previous_id.
	MaxIDLen int
	// MaxNameLen bounds the track event name and the page/screen name.
	MaxNameLen int
	// MaxDepth bounds the nesting of properties, traits, context and
	// integrations; the object itself is depth 1.
	MaxDepth int
	// MaxKeys bounds the keys of any one object inside them.
	MaxKeys int
	// MaxKeyLen bounds the length of an object key.
	MaxKeyLen int
	// MaxStringLen bounds every string value inside them.
	MaxStringLen int
	// MaxSkew is how far in the future an event time may be before it is
	// flagged with FlagFutureTimestamp.
	MaxSkew time.Duration
}

// DefaultLimits returns the limits of the ingestion contract.
func DefaultLimits() Limits {
	return Limits{
		MaxEventBytes:   32 << 10,
		MaxBatchBytes:   500 << 10,
		MaxBatchEvents:  2500,
		MaxMessageIDLen: 100,
		MaxIDLen:        256,
		MaxNameLen:      200,
		MaxDepth:        16,
		MaxKeys:         256,
		MaxKeyLen:       256,
		MaxStringLen:    8 << 10,
		MaxSkew:         10 * time.Minute,
	}
}

// FieldError is one rejected field.
type FieldError struct {
	// Field is the proto field path, e.g. "properties.seats"; empty means the
	// event as a whole.
	Field string
	// Reason says what is wrong.
	Reason string
}

// Error formats the error as "field: reason".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Batch checks the batch-level limits for a request of events events and
// size bytes (its protobuf size, which the caller computes once because it
// also charges it against the in-flight budget). A violation fails the whole
// request, so its Field is a path in the request ("events").
func Batch(events, size int, l Limits) *FieldError {
	if events > l.MaxBatchEvents {
		return fieldErr("events", "%d events, more than the %d allowed per batch", events, l.MaxBatchEvents)
	}
	if size > l.MaxBatchBytes {
		return fieldErr("events", "batch of %d bytes, more than the %d allowed", size, l.MaxBatchBytes)
	}
	return nil
}

// Event validates ev and fills in the server-derived fields: received_at (set
// to receivedAt), timestamp, source and flags, and the canonical event name
// of an alias (see canonical). Output-only fields sent by the
// client (account_id, reattributed) are cleared. On error ev may be partly
// modified and must be rejected.
func Event(ev *ingestionv1.Event, l Limits, receivedAt time.Time) *FieldError {
	return EventOfSize(ev, wire.EventSize(ev), l, receivedAt)
}

// EventOfSize is Event for a caller that already knows size, the protobuf
// size of ev as received (wire.RequestSize gives it for every event of a
// request), so that the event is not walked again to size it.
func EventOfSize(ev *ingestionv1.Event, size int, l Limits, receivedAt time.Time) *FieldError {
	if size > l.MaxEventBytes {
		return fieldErr("", "event of %d bytes, more than the %d allowed", size, l.MaxEventBytes)
	}
	if err := required(ev); err != nil {
		return err
	}
	if err := lengths(ev, l); err != nil {
		return err
	}
	for _, s := range []struct {
		field string
		v     *structpb.Struct
	}{
		{"properties", ev.GetProperties()},
		{"traits", ev.GetTraits()},
		{"context", ev.GetContext()},
		{"integrations", ev.GetIntegrations()},
	} {
		if s.v != nil {
			if err := structure(s.v, 1, l); err != nil {
				err.Field = s.field + err.Field
				return err
			}
		}
	}
	if v, ok := ev.GetContext().GetFields()["groupId"]; ok {
		if _, isStr := v.GetKind().(*structpb.Value_StringValue); !isStr {
			return fieldErr("context.groupId", "not a string")
		}
		if n := utf8.RuneCountInString(v.GetStringValue()); n > l.MaxIDLen {
			return fieldErr("context.groupId", "longer than %d characters", l.MaxIDLen)
		}
	}
	if err := times(ev, l, receivedAt); err != nil {
		return err
	}
	if err := canonical(ev); err != nil {
		return err
	}
	ev.AccountId = ""
	ev.Reattributed = false
	ev.Source = Source(ev)
	if ev.GetType() == ingestionv1.EventType_EVENT_TYPE_TRACK {
		if err := reserved(ev); err != nil {
			return err
		}
	}
	return nil
}

func required(ev *ingestionv1.Event) *FieldError {
	switch ev.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_UNSPECIFIED:
		return fieldErr("type", "required")
	case ingestionv1.EventType_EVENT_TYPE_TRACK:
		if ev.GetEvent() == "" {
			return fieldErr("event", "required for track calls")
		}
	case ingestionv1.EventType_EVENT_TYPE_GROUP:
		if ev.GetGroupId() == "" {
			return fieldErr("group_id", "required for group calls")
		}
	case ingestionv1.EventType_EVENT_TYPE_ALIAS:
		if ev.GetPreviousId() == "" {
			return fieldErr("previous_id", "required for alias calls")
		}
	case ingestionv1.EventType_EVENT_TYPE_IDENTIFY, ingestionv1.EventType_EVENT_TYPE_PAGE, ingestionv1.EventType_EVENT_TYPE_SCREEN:
	default:
		return fieldErr("type", "unknown event type %d", int32(ev.GetType()))
	}
	if ev.GetUserId() == "" && ev.GetAnonymousId() == "" {
		return fieldErr("user_id", "one of user_id or anonymous_id is required")
	}
	return nil
}

func lengths(ev *ingestionv1.Event, l Limits) *FieldError {
	for _, f := range []struct {
		field, v string
		max      int
	}{
		{"message_id", ev.GetMessageId(), l.MaxMessageIDLen},
		{"user_id", ev.GetUserId(), l.MaxIDLen},
		{"anonymous_id", ev.GetAnonymousId(), l.MaxIDLen},
		{"group_id", ev.GetGroupId(), l.MaxIDLen},
		{"previous_id", ev.GetPreviousId(), l.MaxIDLen},
		{"event", ev.GetEvent(), l.MaxNameLen},
		{"name", ev.GetName(), l.MaxNameLen},
	} {
		if len(f.v) > f.max && utf8.RuneCountInString(f.v) > f.max {
			return fieldErr(f.field, "longer than %d characters", f.max)
		}
	}
	return nil
}

// structure bounds depth, keys and string lengths and refuses non-finite
// numbers, which JSON consumers downstream cannot represent. The Field of its
// error is the path below s (".seats", ".list[2]", "" for s itself): paths
// are joined only on the way out of an error, since building one per key
// cost an allocation for every value of every valid event.
func structure(s *structpb.Struct, depth int, l Limits) *FieldError {
	if depth > l.MaxDepth {
		return fieldErr("", "nested deeper than %d levels", l.MaxDepth)
	}
	if len(s.GetFields()) > l.MaxKeys {
		return fieldErr("", "%d keys, more than the %d allowed", len(s.GetFields()), l.MaxKeys)
	}
	for k, v := range s.GetFields() {
		if len(k) > l.MaxKeyLen && utf8.RuneCountInString(k) > l.MaxKeyLen {
			return fieldErr("", "key longer than %d characters", l.MaxKeyLen)
		}
		if err := value(v, depth, l); err != nil {
			err.Field = "." + k + err.Field
			return err
		}
	}
	return nil
}

// value checks v as structure does; its error's Field is the path below v.
func value(v *structpb.Value, depth int, l Limits) *FieldError {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		// A string has at least one byte per character, so only long ones
		// need counting.
		if len(k.StringValue) > l.MaxStringLen && utf8.RuneCountInString(k.StringValue) > l.MaxStringLen {
			return fieldErr("", "string longer than %d characters", l.MaxStringLen)
		}
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return fieldErr("", "not a finite number")
		}
	case *structpb.Value_StructValue:
		return structure(k.StructValue, depth+1, l)
	case *structpb.Value_ListValue:
		if depth+1 > l.MaxDepth {
			return fieldErr("", "nested deeper than %d levels", l.MaxDepth)
		}
		if n := len(k.ListValue.GetValues()); n > l.MaxKeys {
			return fieldErr("", "%d items, more than the %d allowed", n, l.MaxKeys)
		}
		for i, item := range k.ListValue.GetValues() {
			if err := value(item, depth+1, l); err != nil {
				err.Field = "[" + strconv.Itoa(i) + "]" + err.Field
				return err
			}
		}
	}
	return nil
}

// times checks the four timestamps and derives the event time as in the
// Segment spec: receivedAt - (sentAt - originalTimestamp) when the client
// sent sentAt, which cancels the device clock's offset; otherwise the
// client's time as sent (historical imports), else the arrival time. A
// client's explicit timestamp without originalTimestamp is its original time.
func times(ev *ingestionv1.Event, l Limits, receivedAt time.Time) *FieldError {
	for _, f := range []struct {
		field string
		v     *timestamppb.Timestamp
	}{
		{"timestamp", ev.GetTimestamp()},
		{"original_timestamp", ev.GetOriginalTimestamp()},
		{"sent_at", ev.GetSentAt()},
	} {
		if f.v != nil {
			if err := f.v.CheckValid(); err != nil {
				return fieldErr(f.field, "invalid timestamp")
			}
		}
	}
	ev.ReceivedAt = timestamppb.New(receivedAt)
	if ev.GetOriginalTimestamp() == nil && ev.GetTimestamp() != nil {
		ev.OriginalTimestamp = ev.GetTimestamp()
	}
	t := receivedAt
	switch {
	case ev.GetSentAt() != nil && ev.GetOriginalTimestamp() != nil:
		t = receivedAt.Add(-ev.GetSentAt().AsTime().Sub(ev.GetOriginalTimestamp().AsTime()))
	case ev.GetOriginalTimestamp() != nil:
		t = ev.GetOriginalTimestamp().AsTime()
	}
	ts := timestamppb.New(t)
	if ts.CheckValid() != nil {
		return fieldErr("sent_at", "too far from original_timestamp to correct the clock skew")
	}
	ev.Timestamp = ts
	ev.Flags = nil
	if t.After(receivedAt.Add(l.MaxSkew)) {
		ev.Flags = append(ev.Flags, FlagFutureTimestamp)
	}
	return nil
}

// Sources derived from the event name's namespace (the vocabulary's).
const (
	SourceProduct = vocab.SourceProduct
	SourceCRM     = vocab.SourceCRM
	SourceBilling = vocab.SourceBilling
	SourceSupport = vocab.SourceSupport
	SourceSurvey  = vocab.SourceSurvey
	SourceMeeting = vocab.SourceMeeting
)

// Source returns the source of ev: the namespace of a reserved track event
// name ("crm" for "crm.mql"), else "product".
func Source(ev *ingestionv1.Event) string {
	if ev.GetType() != ingestionv1.EventType_EVENT_TYPE_TRACK {
		return SourceProduct
	}
	return vocab.SourceOf(ev.GetEvent())
}

// canonical logs a track event under its canonical name (vocab.Canonical):
// an alias such as "integration_connected" becomes "integration.connected",
// and the name as sent is kept in context.cairn.alias_of. That key is
// Cairn's: a client's own alias_of is dropped, so it is set exactly when
// the name was rewritten. Names starting with "$" are recorded by Cairn
// itself and refused.
func canonical(ev *ingestionv1.Event) *FieldError {
	if ev.GetType() != ingestionv1.EventType_EVENT_TYPE_TRACK {
		dropAliasOf(ev)
		return nil
	}
	sent := ev.GetEvent()
	if vocab.Synthetic(sent) {
		return fieldErr("event", "names starting with %q are recorded by Cairn and cannot be sent", vocab.SyntheticPrefix)
	}
	name := vocab.Canonical(sent)
	if name == sent {
		dropAliasOf(ev)
		return nil
	}
	ev.Event = name
	if ev.Context == nil {
		ev.Context = &structpb.Struct{}
	}
	if ev.Context.Fields == nil {
		ev.Context.Fields = map[string]*structpb.Value{}
	}
	own := ev.Context.Fields[vocab.ContextKey].GetStructValue()
	if own == nil {
		own = &structpb.Struct{}
		ev.Context.Fields[vocab.ContextKey] = structpb.NewStructValue(own)
	}
	if own.Fields == nil {
		own.Fields = map[string]*structpb.Value{}
	}
	own.Fields[vocab.AliasOfKey] = structpb.NewStringValue(sent)
	return nil
}

// dropAliasOf removes a client-sent context.cairn.alias_of (and
// context.cairn when that leaves it empty).
func dropAliasOf(ev *ingestionv1.Event) {
	fields := ev.GetContext().GetFields()
	own := fields[vocab.ContextKey].GetStructValue()
	if own == nil {
		return
	}
	if _, ok := own.GetFields()[vocab.AliasOfKey]; !ok {
		return
	}
	delete(own.Fields, vocab.AliasOfKey)
	if len(own.Fields) == 0 {
		delete(fields, vocab.ContextKey)
	}
}
