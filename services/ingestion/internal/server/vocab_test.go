package server_test

import (
	"context"
	"testing"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
)

// TestAliasesThroughTheAPI sends aliases, a canonical name, an unknown
// reserved name and a synthetic name through Ingest, and reads the account's
// log back through ListAccountEvents: aliases are logged under their
// canonical name with the name as sent in context.cairn.alias_of, so every
// downstream consumer sees one name; the refusals name the event field.
func TestAliasesThroughTheAPI(t *testing.T) {
	f := start(t, server.Config{})
	ctx := context.Background()
	resp, err := f.clients[writeKey].Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{
		track("a", "u", "acme", "integration_connected", map[string]any{"integration": "slack"}),
		track("b", "u", "acme", "meeting.qbr", nil),
		track("c", "u", "acme", "support.ticket_closed", map[string]any{"ticket_id": "T-1"}),
		track("d", "u", "acme", "integration.connected", map[string]any{"integration": "jira"}),
		track("e", "u", "acme", "meeting.qbr_hold", nil),
		track("f", "u", "acme", "$seats_increased", nil),
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantField := []string{"", "", "", "", "events[4].event", "events[5].event"}
	for i, r := range resp.GetResults() {
		if r.GetField() != wantField[i] {
			t.Errorf("results[%d] = %v, want field %q", i, r, wantField[i])
		}
	}
	list, err := f.clients[readKey].ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ event, source, aliasOf string }{
		"a": {"integration.connected", "product", "integration_connected"},
		"b": {"meeting.qbr_held", "meeting", "meeting.qbr"},
		"c": {"support.ticket_resolved", "support", "support.ticket_closed"},
		"d": {"integration.connected", "product", ""},
	}
	if len(list.GetEvents()) != len(want) {
		t.Fatalf("%d events logged, want %d", len(list.GetEvents()), len(want))
	}
	for _, e := range list.GetEvents() {
		w := want[e.GetMessageId()]
		aliasOf := e.GetContext().GetFields()[vocab.ContextKey].GetStructValue().GetFields()[vocab.AliasOfKey].GetStringValue()
		if e.GetEvent() != w.event || e.GetSource() != w.source || aliasOf != w.aliasOf {
			t.Errorf("%s logged as %q (source %q, alias_of %q), want %q (%q, %q)", e.GetMessageId(), e.GetEvent(), e.GetSource(), aliasOf, w.event, w.source, w.aliasOf)
		}
		if e.GetContext().GetFields()["groupId"].GetStringValue() != "acme" {
			t.Errorf("%s lost its context.groupId", e.GetMessageId())
		}
	}
}
