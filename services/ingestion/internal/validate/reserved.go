package validate

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"google.golang.org/protobuf/types/known/structpb"
)

// Reserved returns the reserved event names, sorted, and the property
// contract of each, for documentation and tests. The contract itself is the
// event vocabulary's (pkg/domain/vocab): this package only checks it.
func Reserved() ([]string, map[string][]vocab.Property) {
	m := map[string][]vocab.Property{}
	var names []string
	for _, e := range vocab.All() {
		if e.Reserved() {
			names = append(names, e.Name)
			m[e.Name] = e.Properties
		}
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
	e, ok := vocab.Lookup(ev.GetEvent())
	if !ok || !e.Reserved() {
		ns, _, _ := strings.Cut(ev.GetEvent(), ".")
		return fieldErr("event", "unknown event in the reserved %q namespace (see docs/events.md)", ns)
	}
	fields := ev.GetProperties().GetFields()
	for _, p := range e.Properties {
		v, ok := fields[p.Name]
		if !ok || isNull(v) {
			if p.Required {
				return fieldErr("properties."+p.Name, "required for %s", ev.GetEvent())
			}
			continue
		}
		if err := check(p, v); err != nil {
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
func check(p vocab.Property, v *structpb.Value) *FieldError {
	switch p.Kind {
	case vocab.KindString:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || s.StringValue == "" {
			return fieldErr("", "must be a non-empty string")
		}
	case vocab.KindTime:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return fieldErr("", "must be an RFC 3339 date-time string")
		}
		if _, err := time.Parse(time.RFC3339Nano, s.StringValue); err != nil {
			return fieldErr("", "not RFC 3339")
		}
	case vocab.KindEnum:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || !contains(p.Enum, s.StringValue) {
			return fieldErr("", "must be one of %s", strings.Join(p.Enum, ", "))
		}
	case vocab.KindNumber, vocab.KindInteger:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		if !ok {
			return fieldErr("", "must be a number")
		}
		x := n.NumberValue
		if p.Kind == vocab.KindInteger && x != math.Trunc(x) {
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
