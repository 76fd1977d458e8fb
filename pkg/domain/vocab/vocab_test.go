package vocab_test

import (
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

func TestVocabularyIsConsistent(t *testing.T) {
	seen := map[string]string{}
	for _, e := range vocab.All() {
		for _, n := range append([]string{e.Name}, e.Aliases...) {
			if prev, dup := seen[n]; dup {
				t.Errorf("%q is both %s and %s", n, prev, e.Name)
			}
			seen[n] = e.Name
			if got := vocab.Canonical(n); got != e.Name {
				t.Errorf("Canonical(%q) = %q, want %q", n, got, e.Name)
			}
		}
		if e.Summary == "" {
			t.Errorf("%s has no summary", e.Name)
		}
		if want := vocab.SourceOf(e.Name); e.Source != want {
			t.Errorf("%s: source %q, but its name says %q", e.Name, e.Source, want)
		}
		for _, a := range e.Aliases {
			// An alias must be accepted where the name is: a reserved
			// namespace refuses unknown names, so an alias may only sit in
			// the name's own namespace or outside every reserved one.
			if src := vocab.SourceOf(a); src != vocab.SourceProduct && src != e.Source {
				t.Errorf("%s: alias %q is in another reserved namespace", e.Name, a)
			}
		}
		if e.Reserved() != (e.Role == 0) {
			t.Errorf("%s: reserved events have no role and product events have one", e.Name)
		}
		if e.Role == vocab.RoleSynthetic && !strings.HasPrefix(e.Name, "$") {
			t.Errorf("%s: synthetic names start with $", e.Name)
		}
		for _, p := range e.Properties {
			if p.Kind == vocab.KindEnum && len(p.Enum) == 0 {
				t.Errorf("%s.%s: enum without values", e.Name, p.Name)
			}
		}
	}
	if vocab.Known("crm.mq1") || vocab.Canonical("my_own_event") != "my_own_event" {
		t.Error("unknown names must stay unknown and unchanged")
	}
	if got := strings.Join(vocab.Features(), ","); !strings.Contains(got, "report_created") || strings.Contains(got, "content_viewed") {
		t.Errorf("features = %s: content views are not features", got)
	}
}

func TestAliases(t *testing.T) {
	for alias, want := range map[string]string{
		"integration_connected": "integration.connected",
		"meeting.qbr":           "meeting.qbr_held",
		"support.ticket_closed": "support.ticket_resolved",
	} {
		if got := vocab.Canonical(alias); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", alias, got, want)
		}
	}
}

func TestPropertyType(t *testing.T) {
	for _, tc := range []struct {
		p    vocab.Property
		want string
	}{
		{vocab.Property{Kind: vocab.KindString}, "string"},
		{vocab.Property{Kind: vocab.KindNumber, HasMin: true}, "number >= 0"},
		{vocab.Property{Kind: vocab.KindNumber, HasMin: true, ExclusiveMin: true}, "number > 0"},
		{vocab.Property{Kind: vocab.KindInteger, HasMin: true, HasMax: true, Max: 10}, "integer 0..10"},
		{vocab.Property{Kind: vocab.KindEnum, Enum: []string{"p1", "p2"}}, "one of p1, p2"},
		{vocab.Property{Kind: vocab.KindTime}, "RFC 3339 date-time"},
	} {
		if got := tc.p.Type(); got != tc.want {
			t.Errorf("Type() = %q, want %q", got, tc.want)
		}
	}
}

func TestSynthetic(t *testing.T) {
	for _, n := range vocab.WithRole(vocab.RoleSynthetic) {
		if !vocab.Synthetic(n) {
			t.Errorf("%s is synthetic but Synthetic() says no", n)
		}
	}
	if vocab.Synthetic("seats_increased") || !vocab.Synthetic("$x") {
		t.Error("Synthetic is the $ prefix")
	}
	if e, ok := vocab.Lookup(vocab.IntegrationConnected); !ok || e.Role != vocab.RoleIntegration {
		t.Errorf("IntegrationConnected = %q is not the integration event", vocab.IntegrationConnected)
	}
}
