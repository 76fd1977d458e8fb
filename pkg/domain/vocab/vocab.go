// Package vocab is Cairn's event vocabulary: every event name Cairn gives a
// meaning to, written once, with its aliases. Ingestion validates reserved
// events against it and logs an alias under its canonical name (keeping the
// name as sent in context.cairn.alias_of), so downstream services see one
// name; it refuses "$" names, which only Cairn records. The built-in
// journey templates, the default health model, routing and the demo read
// only names it holds (tests hold them to it), and docs/events.md documents
// it, so that no two services can read one event two ways.
//
// A name outside the vocabulary is still accepted as a product event (an
// account's own instrumentation); it only has no built-in meaning. Inside a
// reserved namespace (crm., billing., support., survey., meeting.) an
// unknown name is refused, so that a typo fails loudly.
package vocab

import (
	"fmt"
	"slices"
	"strings"
)

// IntegrationConnected is the canonical name of the event that connects an
// integration (its name is the "integration" property).
const IntegrationConnected = "integration.connected"

// Where ingestion keeps the name a client sent when it was an alias: the
// event is logged under its canonical name and context.cairn.alias_of holds
// the name as sent ("integration_connected"). Ingestion sets it only then,
// and drops a client-sent alias_of, so that it is always Cairn's own.
const (
	// ContextKey is the object of context that Cairn writes.
	ContextKey = "cairn"
	// AliasOfKey is the key, inside ContextKey, of the name as sent.
	AliasOfKey = "alias_of"
)

// SyntheticPrefix starts the names Cairn records itself ($seats_increased);
// ingestion refuses them from clients.
const SyntheticPrefix = "$"

// Synthetic reports whether name is reserved for events Cairn records
// itself.
func Synthetic(name string) bool { return strings.HasPrefix(name, SyntheticPrefix) }

// Kind is the type a property must have.
type Kind int

// Property kinds.
const (
	// KindString is a non-empty JSON string.
	KindString Kind = iota + 1
	// KindNumber is a JSON number.
	KindNumber
	// KindInteger is a JSON number without a fractional part.
	KindInteger
	// KindTime is an RFC 3339 date-time string.
	KindTime
	// KindEnum is a string from Property.Enum.
	KindEnum
)

// String names the kind as docs/events.md does.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindInteger:
		return "integer"
	case KindTime:
		return "RFC 3339 date-time"
	case KindEnum:
		return "enum"
	}
	return "unknown"
}

// Property is the contract for one property of an event.
type Property struct {
	// Name is the key in properties.
	Name string
	// Kind is the required JSON type.
	Kind Kind
	// Required properties must be present.
	Required bool
	// Min is the lower bound of a number, checked when HasMin is set.
	Min float64
	// Max is the upper bound of a number, checked when HasMax is set.
	Max float64
	// HasMin enables Min (a zero Min is a real bound: arr >= 0).
	HasMin bool
	// HasMax enables Max.
	HasMax bool
	// ExclusiveMin makes Min a strict bound (seats > 0).
	ExclusiveMin bool
	// Enum lists the allowed values of a KindEnum property.
	Enum []string
	// Notes is the documentation's remark on the property.
	Notes string
}

// Type describes the property's type and bounds as docs/events.md's
// tables do: "string", "number >= 0", "integer 0..10", "one of p1, p2".
func (p Property) Type() string {
	switch p.Kind {
	case KindEnum:
		return "one of " + strings.Join(p.Enum, ", ")
	case KindNumber, KindInteger:
		t := p.Kind.String()
		switch {
		case p.HasMin && p.HasMax:
			return fmt.Sprintf("%s %g..%g", t, p.Min, p.Max)
		case p.HasMin && p.ExclusiveMin:
			return fmt.Sprintf("%s > %g", t, p.Min)
		case p.HasMin:
			return fmt.Sprintf("%s >= %g", t, p.Min)
		case p.HasMax:
			return fmt.Sprintf("%s <= %g", t, p.Max)
		}
		return t
	}
	return p.Kind.String()
}

// Sources of events: the namespace of a reserved name, else product.
const (
	SourceProduct = "product"
	SourceCRM     = "crm"
	SourceBilling = "billing"
	SourceSupport = "support"
	SourceSurvey  = "survey"
	SourceMeeting = "meeting"
)

// Role says what Cairn does with a product event.
type Role int

// String names the role as docs/events.md does.
func (r Role) String() string {
	switch r {
	case RoleMilestone:
		return "milestone"
	case RoleFeature:
		return "feature"
	case RoleIntegration:
		return "integration"
	case RoleEngagement:
		return "engagement"
	case RoleSynthetic:
		return "synthetic"
	}
	return "none"
}

// Roles lists the roles of product events in the documentation's order.
func Roles() []Role {
	return []Role{RoleMilestone, RoleFeature, RoleIntegration, RoleEngagement, RoleSynthetic}
}

// Roles of product events.
const (
	// RoleMilestone is a journey milestone a template reads by name
	// (activated, trial_started, contract_signed...).
	RoleMilestone Role = iota + 1
	// RoleFeature is a product feature: it counts toward features_used()
	// and health's feature adoption.
	RoleFeature
	// RoleIntegration connects (or disconnects) an integration; the
	// integration's name is the "integration" property.
	RoleIntegration
	// RoleEngagement is marketing or content engagement (content viewed,
	// webinar attended): activity, but not a feature.
	RoleEngagement
	// RoleSynthetic is recorded by Cairn itself from other events
	// ($seats_increased); a client cannot send it.
	RoleSynthetic
)

// Event is one entry of the vocabulary.
type Event struct {
	// Name is the canonical name.
	Name string
	// Aliases are other names accepted for the same event; ingestion
	// logs the event under Name.
	Aliases []string
	// Source is the namespace of a reserved name, else SourceProduct.
	Source string
	// Role is what a product event means; 0 for reserved events.
	Role Role
	// Summary is one sentence for the documentation.
	Summary string
	// Properties are the checked properties (reserved events only); any
	// other property is allowed and kept.
	Properties []Property
}

// Names returns the canonical name followed by the aliases.
func (e Event) Names() []string { return append([]string{e.Name}, e.Aliases...) }

// Reserved reports whether e is in a reserved namespace.
func (e Event) Reserved() bool { return e.Source != SourceProduct }

// SourceOf returns the source of a track event name: its namespace when
// that is reserved, else SourceProduct.
func SourceOf(name string) string {
	ns, _, ok := strings.Cut(name, ".")
	if !ok {
		return SourceProduct
	}
	switch ns {
	case SourceCRM, SourceBilling, SourceSupport, SourceSurvey, SourceMeeting:
		return ns
	}
	return SourceProduct
}

var (
	all     = build()
	byName  = index(all)
	names   = sortedNames(all)
	feature = namesWith(RoleFeature)
)

// All returns every event, sorted by source (reserved namespaces first, in
// the documentation's order) and then as listed. The events share their
// slices (aliases, properties) with the registry: do not modify them.
func All() []Event { return slices.Clone(all) }

// Lookup returns the event a name or alias stands for (sharing its slices
// with the registry, as All does).
func Lookup(name string) (Event, bool) {
	i, ok := byName[name]
	if !ok {
		return Event{}, false
	}
	return all[i], true
}

// Canonical returns the canonical name of name: the event's Name when name
// is an alias, else name itself.
func Canonical(name string) string {
	if i, ok := byName[name]; ok {
		return all[i].Name
	}
	return name
}

// Known reports whether name (or an alias) is in the vocabulary.
func Known(name string) bool {
	_, ok := byName[name]
	return ok
}

// Names returns every canonical name, sorted.
func Names() []string { return slices.Clone(names) }

// Features returns the canonical names of the product features, in the
// vocabulary's order: what a definition counts as a feature unless it
// declares its own list.
func Features() []string { return slices.Clone(feature) }

// WithRole returns the canonical names of the events of role r.
func WithRole(r Role) []string { return namesWith(r) }

func index(evs []Event) map[string]int {
	m := make(map[string]int, len(evs)*2)
	for i, e := range evs {
		m[e.Name] = i
		for _, a := range e.Aliases {
			m[a] = i
		}
	}
	return m
}

func sortedNames(evs []Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Name)
	}
	slices.Sort(out)
	return out
}

func namesWith(r Role) []string {
	var out []string
	for _, e := range all {
		if e.Role == r {
			out = append(out, e.Name)
		}
	}
	return out
}
