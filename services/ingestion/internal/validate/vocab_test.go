package validate

import (
	"reflect"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"google.golang.org/protobuf/types/known/structpb"
)

// sample returns a value that meets p's contract.
func sample(t *testing.T, p vocab.Property) any {
	t.Helper()
	switch p.Kind {
	case vocab.KindString:
		return "x"
	case vocab.KindTime:
		if p.Name == "contract_end" {
			return "2027-01-01T00:00:00Z"
		}
		return "2026-01-01T00:00:00Z"
	case vocab.KindEnum:
		return p.Enum[0]
	case vocab.KindNumber, vocab.KindInteger:
		switch {
		case p.HasMax:
			return p.Max
		case p.HasMin:
			return p.Min + 1
		}
		return 1
	}
	t.Fatalf("property %s: kind %v has no sample", p.Name, p.Kind)
	return nil
}

// TestEveryVocabularyNameIsAccepted holds ingestion to the vocabulary: every
// name and alias Cairn gives a meaning to is accepted with its required
// properties, logged under its canonical name with the right source, and
// every synthetic name is refused.
func TestEveryVocabularyNameIsAccepted(t *testing.T) {
	for _, e := range vocab.All() {
		for _, name := range e.Names() {
			t.Run(name, func(t *testing.T) {
				p := map[string]any{}
				for _, prop := range e.Properties {
					if prop.Required {
						p[prop.Name] = sample(t, prop)
					}
				}
				ev := track(name, p)
				err := Event(ev, DefaultLimits(), now)
				if e.Role == vocab.RoleSynthetic {
					if err == nil || err.Field != "event" {
						t.Fatalf("Event() = %v, want a refusal of the synthetic name naming event", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Event() = %v, want accepted", err)
				}
				if ev.GetEvent() != e.Name || ev.GetSource() != e.Source {
					t.Errorf("logged as %q from %q, want %q from %q", ev.GetEvent(), ev.GetSource(), e.Name, e.Source)
				}
				aliasOf := ev.GetContext().GetFields()[vocab.ContextKey].GetStructValue().GetFields()[vocab.AliasOfKey].GetStringValue()
				if want := map[bool]string{true: "", false: name}[name == e.Name]; aliasOf != want {
					t.Errorf("context.cairn.alias_of = %q, want %q", aliasOf, want)
				}
			})
		}
	}
}

func TestAliases(t *testing.T) {
	ctx := func(m map[string]any) *structpb.Struct { return props(m) }
	tests := []struct {
		name      string
		ev        *ingestionv1.Event
		wantEvent string
		wantField string // "" means valid
		// wantContext is the event's context after validation, as JSON-ish
		// map; nil means no context.
		wantContext map[string]any
	}{
		{name: "alias is rewritten and kept",
			ev:        track("integration_connected", map[string]any{"integration": "slack"}),
			wantEvent: "integration.connected", wantContext: map[string]any{"cairn": map[string]any{"alias_of": "integration_connected"}}},
		{name: "reserved alias: contract checked on the canonical event",
			ev:        track("support.ticket_closed", map[string]any{"ticket_id": "T-1"}),
			wantEvent: "support.ticket_resolved", wantContext: map[string]any{"cairn": map[string]any{"alias_of": "support.ticket_closed"}}},
		{name: "reserved alias without its required property",
			ev: track("support.ticket_closed", nil), wantField: "properties.ticket_id"},
		{name: "meeting.qbr is the QBR",
			ev:        track("meeting.qbr", nil),
			wantEvent: "meeting.qbr_held", wantContext: map[string]any{"cairn": map[string]any{"alias_of": "meeting.qbr"}}},
		{name: "client context is kept beside alias_of",
			ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u", Event: "alert_configured",
				Context: ctx(map[string]any{"groupId": "acme", "cairn": map[string]any{"alias_of": "spoofed", "x": 1}})},
			wantEvent: "alert_created", wantContext: map[string]any{"groupId": "acme", "cairn": map[string]any{"alias_of": "alert_configured", "x": 1}}},
		{name: "a client's alias_of on a canonical name is dropped",
			ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u", Event: "integration.connected",
				Context: ctx(map[string]any{"groupId": "acme", "cairn": map[string]any{"alias_of": "integration_connected"}})},
			wantEvent: "integration.connected", wantContext: map[string]any{"groupId": "acme"}},
		{name: "a client's alias_of on a page is dropped, other keys kept",
			ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, UserId: "u", Name: "integration_connected",
				Context: ctx(map[string]any{"cairn": map[string]any{"alias_of": "x", "y": "z"}})},
			wantContext: map[string]any{"cairn": map[string]any{"y": "z"}}},
		{name: "unknown product names are kept as sent",
			ev: track("my_own_event", nil), wantEvent: "my_own_event"},
		{name: "synthetic names are Cairn's", ev: track("$seats_increased", nil), wantField: "event"},
		{name: "any $ name is refused", ev: track("$anything", nil), wantField: "event"},
		{name: "unknown reserved name is still refused", ev: track("meeting.qbr_hel", nil), wantField: "event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Event(tc.ev, DefaultLimits(), now.Add(-time.Second))
			if tc.wantField != "" {
				if err == nil || err.Field != tc.wantField {
					t.Fatalf("Event() = %v, want an error on %q", err, tc.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("Event() = %v", err)
			}
			if tc.ev.GetEvent() != tc.wantEvent {
				t.Errorf("event = %q, want %q", tc.ev.GetEvent(), tc.wantEvent)
			}
			var got map[string]any
			if tc.ev.GetContext() != nil {
				got = tc.ev.GetContext().AsMap()
			}
			want := tc.wantContext
			if want != nil {
				want = props(want).AsMap()
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("context = %v, want %v", got, want)
			}
		})
	}
}
