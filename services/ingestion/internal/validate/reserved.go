package validate

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// Kind is the type a reserved event property must have.
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

// Property is the contract for one property of a reserved event.
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
}

func str(name string, req bool) Property {
	return Property{Name: name, Kind: KindString, Required: req}
}
func when(name string, req bool) Property { return Property{Name: name, Kind: KindTime, Required: req} }
func amount(name string, req bool) Property {
	return Property{Name: name, Kind: KindNumber, Required: req, HasMin: true}
}
func positive(name string, req bool) Property {
	return Property{Name: name, Kind: KindNumber, Required: req, HasMin: true, ExclusiveMin: true}
}

var priorities = []string{"p1", "p2", "p3", "p4"}

// reservedEvents is the contract for the journey's non-product sources; it is
// documented, event by event, in docs/events.md.
func reservedEvents() map[string][]Property {
	return map[string][]Property{
		"crm.lead_created":   {str("lead_id", true), str("email", false), str("lead_source", false)},
		"crm.mql":            {str("lead_id", false), amount("score", false), str("reason", false)},
		"crm.sql_accepted":   {str("lead_id", false), str("opportunity_id", false), str("owner_id", false)},
		"crm.contacted":      {{Name: "channel", Kind: KindEnum, Enum: []string{"email", "call", "meeting", "social", "other"}}, str("owner_id", false)},
		"crm.meeting_booked": {when("meeting_at", false), str("owner_id", false)},
		"crm.opportunity_stage_changed": {
			str("opportunity_id", true), str("stage", true), str("previous_stage", false), amount("amount", false),
		},
		"crm.closed_won":               {str("opportunity_id", false), amount("amount", false), str("plan", false)},
		"crm.closed_lost":              {str("opportunity_id", false), str("reason", false)},
		"billing.subscription_started": {str("plan", true), positive("seats", false), amount("arr", false)},
		"billing.contract_updated": {
			str("plan", true), positive("seats", true), amount("arr", true),
			when("contract_start", true), when("contract_end", true),
		},
		"billing.renewed": {amount("arr", false), when("contract_end", false)},
		"billing.churned": {str("reason", false), amount("arr", false)},
		"support.ticket_opened": {
			str("ticket_id", true), {Name: "priority", Kind: KindEnum, Required: true, Enum: priorities},
		},
		"support.ticket_resolved": {
			str("ticket_id", true), {Name: "priority", Kind: KindEnum, Enum: priorities},
		},
		"survey.nps": {
			{Name: "score", Kind: KindInteger, Required: true, HasMin: true, HasMax: true, Min: 0, Max: 10},
			str("comment", false),
		},
		"meeting.qbr_held": {when("held_at", false), {Name: "attendees", Kind: KindInteger, HasMin: true, Min: 0}},
	}
}

// reservedByName is reservedEvents built once: reserved consults it for
// every reserved event, and Reserved hands out its own copies.
var reservedByName = reservedEvents()

// Reserved returns the reserved event names in order and the property
// contract of each, for documentation and tests.
func Reserved() ([]string, map[string][]Property) {
	m := reservedEvents()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, m
}

// reserved checks a track event whose name is in a reserved namespace.
// Unknown names in those namespaces are refused so that a typo such as
// "crm.mq1" fails loudly instead of silently never qualifying a lead.
func reserved(ev *ingestionv1.Event) *FieldError {
	if Source(ev) == SourceProduct {
		return nil
	}
	props, ok := reservedByName[ev.GetEvent()]
	if !ok {
		ns, _, _ := strings.Cut(ev.GetEvent(), ".")
		return fieldErr("event", "unknown event in the reserved %q namespace (see docs/events.md)", ns)
	}
	fields := ev.GetProperties().GetFields()
	for _, p := range props {
		v, ok := fields[p.Name]
		if !ok || isNull(v) {
			if p.Required {
				return fieldErr("properties."+p.Name, "required for %s", ev.GetEvent())
			}
			continue
		}
		if err := p.check(v); err != nil {
			err.Field = "properties." + p.Name
			return err
		}
	}
	if ev.GetEvent() == "billing.contract_updated" {
		start, _ := time.Parse(time.RFC3339Nano, fields["contract_start"].GetStringValue())
		end, _ := time.Parse(time.RFC3339Nano, fields["contract_end"].GetStringValue())
		if !end.After(start) {
			return fieldErr("properties.contract_end", "not after contract_start")
		}
	}
	return nil
}

func isNull(v *structpb.Value) bool {
	_, null := v.GetKind().(*structpb.Value_NullValue)
	return null
}

// check reports a value that breaks p's contract; the caller names the field.
func (p Property) check(v *structpb.Value) *FieldError {
	switch p.Kind {
	case KindString:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || s.StringValue == "" {
			return fieldErr("", "must be a non-empty string")
		}
	case KindTime:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return fieldErr("", "must be an RFC 3339 date-time string")
		}
		if _, err := time.Parse(time.RFC3339Nano, s.StringValue); err != nil {
			return fieldErr("", "not RFC 3339")
		}
	case KindEnum:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || !contains(p.Enum, s.StringValue) {
			return fieldErr("", "must be one of %s", strings.Join(p.Enum, ", "))
		}
	case KindNumber, KindInteger:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		if !ok {
			return fieldErr("", "must be a number")
		}
		x := n.NumberValue
		if p.Kind == KindInteger && x != math.Trunc(x) {
			return fieldErr("", "must be an integer")
		}
		if p.HasMin && (x < p.Min || (p.ExclusiveMin && x == p.Min)) {
			op := ">="
			if p.ExclusiveMin {
				op = ">"
			}
			return fieldErr("", "must be %s %s", op, fmtNum(p.Min))
		}
		if p.HasMax && x > p.Max {
			return fieldErr("", "must be <= %s", fmtNum(p.Max))
		}
	}
	return nil
}

func fmtNum(x float64) string { return fmt.Sprintf("%g", x) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
