// Package config reads and writes the routing YAML file: rules, PQL rules,
// SLA policies and the fallback pool (the routingv1.Config), plus owners and
// pools for bulk loading with `cairn apply -f routing.yaml`. The format is
// documented in docs/routing.md.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
)

// MaxSize bounds the YAML accepted, in bytes.
const MaxSize = 1 << 20

// BusinessDay is what "1d" means in SLA durations: one default working day.
const BusinessDay = 8 * time.Hour

// File is the YAML document.
type File struct {
	// Kind, when set, must be "routing"; it lets one tool tell routing,
	// journey and health files apart.
	Kind string `yaml:"kind,omitempty"`
	// FallbackPool is the pool used when no rule matches or the matched
	// rule finds nobody eligible.
	FallbackPool string `yaml:"fallback_pool,omitempty"`
	// Owners are upserted by `cairn apply`.
	Owners []Owner `yaml:"owners,omitempty"`
	// Pools are upserted by `cairn apply`.
	Pools []Pool `yaml:"pools,omitempty"`
	// Rules are ordered; the first match wins.
	Rules []Rule `yaml:"rules,omitempty"`
	// PQLRules qualify accounts from product signals.
	PQLRules []PQLRule `yaml:"pql_rules,omitempty"`
	// SLAPolicies override the defaults by type and segment.
	SLAPolicies []SLAPolicy `yaml:"sla_policies,omitempty"`
}

// Owner is an owner entry.
type Owner struct {
	// ID is the owner id.
	ID string `yaml:"id"`
	// Name is the display name.
	Name string `yaml:"name,omitempty"`
	// Email is the owner's email.
	Email string `yaml:"email,omitempty"`
	// Team is sdr, ae, csm, implementation or manager.
	Team string `yaml:"team,omitempty"`
	// Territories the owner covers.
	Territories []string `yaml:"territories,omitempty"`
	// Segments the owner covers.
	Segments []string `yaml:"segments,omitempty"`
	// Capacity is the maximum of open assignments (0 = unlimited).
	Capacity int32 `yaml:"capacity,omitempty"`
	// TimeZone is an IANA zone.
	TimeZone string `yaml:"time_zone,omitempty"`
	// WorkingHours default to Mon-Fri 09:00-17:00.
	WorkingHours []Hours `yaml:"working_hours,omitempty"`
	// Holidays are local dates YYYY-MM-DD.
	Holidays []string `yaml:"holidays,omitempty"`
	// OutOfOffice is an absence window.
	OutOfOffice *Window `yaml:"out_of_office,omitempty"`
	// Manager is notified on escalation.
	Manager string `yaml:"manager,omitempty"`
	// Weight for weighted round-robin (default 1).
	Weight int32 `yaml:"weight,omitempty"`
}

// Hours is one weekday's working interval.
type Hours struct {
	// Weekday is mon..sun (or 0..6, Sunday = 0).
	Weekday string `yaml:"weekday"`
	// Start is "09:00".
	Start string `yaml:"start"`
	// End is "17:00".
	End string `yaml:"end"`
}

// Window is an RFC 3339 interval.
type Window struct {
	// Start is inclusive.
	Start string `yaml:"start,omitempty"`
	// End is exclusive.
	End string `yaml:"end,omitempty"`
}

// Pool is a pool entry.
type Pool struct {
	// ID is the pool id.
	ID string `yaml:"id"`
	// Name is the display name.
	Name string `yaml:"name,omitempty"`
	// Strategy is round_robin, weighted_round_robin or least_loaded.
	Strategy string `yaml:"strategy,omitempty"`
	// Owners are owner ids in round-robin order.
	Owners []string `yaml:"owners,omitempty"`
}

// Rule is a routing rule.
type Rule struct {
	// Name identifies the rule in decisions.
	Name string `yaml:"name"`
	// Types limit the rule to mql, pql, sql, closed_won, renewal, risk, manual.
	Types []string `yaml:"types,omitempty"`
	// When is the CEL condition; empty always matches.
	When string `yaml:"when,omitempty"`
	// Action is account_owner, owner or pool.
	Action string `yaml:"action"`
	// Owner is the owner id for action owner.
	Owner string `yaml:"owner,omitempty"`
	// Pool is the pool for action pool, and the fallback of the other actions.
	Pool string `yaml:"pool,omitempty"`
	// Team is the team of the account owner for action account_owner.
	Team string `yaml:"team,omitempty"`
}

// PQLRule is a PQL rule.
type PQLRule struct {
	// Name identifies the rule.
	Name string `yaml:"name"`
	// When is the CEL condition over product signals.
	When string `yaml:"when"`
}

// SLAPolicy is an SLA policy.
type SLAPolicy struct {
	// Name identifies the policy.
	Name string `yaml:"name"`
	// Type is the handoff type.
	Type string `yaml:"type"`
	// Segment limits the policy to one segment.
	Segment string `yaml:"segment,omitempty"`
	// Within is business time: Go duration ("1h30m") or business days ("2d").
	Within string `yaml:"within"`
	// SatisfiedBy lists the touch types that meet the SLA (empty = any).
	SatisfiedBy []string `yaml:"satisfied_by,omitempty"`
	// ReassignOnBreach moves the assignment to the pool's next owner.
	ReassignOnBreach bool `yaml:"reassign_on_breach,omitempty"`
	// NotifyManager publishes an escalation for the owner's manager.
	NotifyManager bool `yaml:"notify_manager,omitempty"`
}

// Error lists every problem found, each with a path.
type Error struct {
	// Problems are the individual errors.
	Problems []*commonv1.ValidationError
}

// Error joins the problems as "path: message; ...".
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.GetPath() != "" {
			b.WriteString(p.GetPath() + ": ")
		}
		b.WriteString(p.GetMessage())
	}
	return b.String()
}

// Parse decodes a routing YAML file. It rejects unknown fields, a second
// YAML document and numbers that are NaN, infinite or out of range, and
// returns an *Error naming every bad field.
func Parse(data []byte) (*routingv1.Config, []*routingv1.Owner, []*routingv1.Pool, error) {
	if len(data) > MaxSize {
		return nil, nil, nil, &Error{Problems: []*commonv1.ValidationError{{Message: fmt.Sprintf("file is larger than %d bytes", MaxSize)}}}
	}
	if err := yamldoc.Check(data); err != nil {
		var ye *yamldoc.Error
		if errors.As(err, &ye) {
			return nil, nil, nil, &Error{Problems: []*commonv1.ValidationError{{Path: ye.Path, Message: ye.Message()}}}
		}
		return nil, nil, nil, &Error{Problems: []*commonv1.ValidationError{{Message: err.Error()}}}
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, nil, &Error{Problems: []*commonv1.ValidationError{{Message: fmt.Sprintf("decode YAML: %v", err)}}}
	}
	return f.Proto()
}

// Proto converts the file to the API messages.
func (f *File) Proto() (*routingv1.Config, []*routingv1.Owner, []*routingv1.Pool, error) {
	var probs []*commonv1.ValidationError
	bad := func(path, format string, a ...any) {
		probs = append(probs, &commonv1.ValidationError{Path: path, Message: fmt.Sprintf(format, a...)})
	}
	if f.Kind != "" && f.Kind != "routing" {
		bad("kind", "must be routing, not %q", f.Kind)
	}
	cfg := &routingv1.Config{FallbackPoolId: f.FallbackPool}
	var owners []*routingv1.Owner
	for i, o := range f.Owners {
		path := fmt.Sprintf("owners[%d]", i)
		if o.ID == "" {
			bad(path+".id", "required")
		}
		po := &routingv1.Owner{
			OwnerId: o.ID, Name: o.Name, Email: o.Email, Territories: o.Territories, Segments: o.Segments,
			Capacity: o.Capacity, TimeZone: o.TimeZone, Holidays: o.Holidays, ManagerId: o.Manager, Weight: o.Weight,
		}
		if o.Team != "" {
			t, ok := routingv1.Team_value["TEAM_"+strings.ToUpper(o.Team)]
			if !ok {
				bad(path+".team", "unknown team %q", o.Team)
			}
			po.Team = routingv1.Team(t)
		}
		if o.TimeZone != "" {
			if _, err := time.LoadLocation(o.TimeZone); err != nil {
				bad(path+".time_zone", "unknown zone %q", o.TimeZone)
			}
		}
		for j, h := range o.WorkingHours {
			wd, ok := parseWeekday(h.Weekday)
			if !ok {
				bad(fmt.Sprintf("%s.working_hours[%d].weekday", path, j), "unknown weekday %q", h.Weekday)
			}
			po.WorkingHours = append(po.WorkingHours, &routingv1.WorkingHours{Weekday: int32(wd), Start: h.Start, End: h.End})
		}
		if w := o.OutOfOffice; w != nil {
			tw := &commonv1.TimeWindow{}
			for _, b := range []struct {
				name string
				v    string
				dst  **timestamppb.Timestamp
			}{{"start", w.Start, &tw.Start}, {"end", w.End, &tw.End}} {
				if b.v == "" {
					continue
				}
				ts, err := time.Parse(time.RFC3339, b.v)
				if err != nil {
					bad(path+".out_of_office."+b.name, "%q is not RFC 3339", b.v)
					continue
				}
				*b.dst = timestamppb.New(ts)
			}
			po.OutOfOffice = tw
		}
		owners = append(owners, po)
	}
	var pools []*routingv1.Pool
	for i, p := range f.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		if p.ID == "" {
			bad(path+".id", "required")
		}
		pp := &routingv1.Pool{PoolId: p.ID, Name: p.Name, OwnerIds: p.Owners}
		if p.Strategy != "" {
			s, ok := routingv1.Strategy_value["STRATEGY_"+strings.ToUpper(p.Strategy)]
			if !ok {
				bad(path+".strategy", "unknown strategy %q", p.Strategy)
			}
			pp.Strategy = routingv1.Strategy(s)
		}
		pools = append(pools, pp)
	}
	for i, r := range f.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		pr := &routingv1.Rule{Name: r.Name, Condition: r.When, OwnerId: r.Owner, PoolId: r.Pool}
		for j, t := range r.Types {
			ht, ok := ParseType(t)
			if !ok {
				bad(fmt.Sprintf("%s.types[%d]", path, j), "unknown handoff type %q", t)
			}
			pr.Types = append(pr.Types, ht)
		}
		a, ok := routingv1.ActionKind_value["ACTION_KIND_"+strings.ToUpper(r.Action)]
		if !ok || a == 0 {
			bad(path+".action", "must be account_owner, owner or pool, not %q", r.Action)
		}
		pr.Action = routingv1.ActionKind(a)
		if r.Team != "" {
			t, ok := routingv1.Team_value["TEAM_"+strings.ToUpper(r.Team)]
			if !ok {
				bad(path+".team", "unknown team %q", r.Team)
			}
			pr.Team = routingv1.Team(t)
		}
		cfg.Rules = append(cfg.Rules, pr)
	}
	for _, r := range f.PQLRules {
		cfg.PqlRules = append(cfg.PqlRules, &routingv1.PqlRule{Name: r.Name, Condition: r.When})
	}
	for i, p := range f.SLAPolicies {
		path := fmt.Sprintf("sla_policies[%d]", i)
		ht, ok := ParseType(p.Type)
		if !ok {
			bad(path+".type", "unknown handoff type %q", p.Type)
		}
		d, err := ParseDuration(p.Within)
		if err != nil {
			bad(path+".within", "%v", err)
		}
		cfg.SlaPolicies = append(cfg.SlaPolicies, &routingv1.SlaPolicy{
			Name: p.Name, Type: ht, Segment: p.Segment, Within: durationpb.New(d), SatisfiedBy: p.SatisfiedBy,
			ReassignOnBreach: p.ReassignOnBreach, NotifyManager: p.NotifyManager,
		})
	}
	if len(probs) > 0 {
		return nil, nil, nil, &Error{Problems: probs}
	}
	return cfg, owners, pools, nil
}

// ParseType parses "mql", "closed_won", ... into a HandoffType.
func ParseType(s string) (routingv1.HandoffType, bool) {
	v, ok := routingv1.HandoffType_value["HANDOFF_TYPE_"+strings.ToUpper(s)]
	return routingv1.HandoffType(v), ok && v != 0
}

func typeName(t routingv1.HandoffType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "HANDOFF_TYPE_"))
}

func parseWeekday(s string) (time.Weekday, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Weekday(n), n >= 0 && n <= 6
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if l := strings.ToLower(s); l == name || l == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// ParseDuration parses a Go duration or a number of business days "2d"
// (8 hours each). It must be positive.
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("%q is not a positive number of business days", s)
		}
		d = time.Duration(n * float64(BusinessDay))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration like 4h or 2d", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

func formatDuration(d time.Duration) string {
	if d > 0 && d%BusinessDay == 0 {
		return fmt.Sprintf("%dd", d/BusinessDay)
	}
	return d.String()
}

// Format renders a config (without owners and pools) as YAML that Parse reads
// back to the same config.
func Format(cfg *routingv1.Config) ([]byte, error) {
	f := File{Kind: "routing", FallbackPool: cfg.GetFallbackPoolId()}
	for _, r := range cfg.GetRules() {
		fr := Rule{Name: r.GetName(), When: r.GetCondition(), Owner: r.GetOwnerId(), Pool: r.GetPoolId(),
			Action: strings.ToLower(strings.TrimPrefix(r.GetAction().String(), "ACTION_KIND_"))}
		for _, t := range r.GetTypes() {
			fr.Types = append(fr.Types, typeName(t))
		}
		if r.GetTeam() != 0 {
			fr.Team = strings.ToLower(strings.TrimPrefix(r.GetTeam().String(), "TEAM_"))
		}
		f.Rules = append(f.Rules, fr)
	}
	for _, r := range cfg.GetPqlRules() {
		f.PQLRules = append(f.PQLRules, PQLRule{Name: r.GetName(), When: r.GetCondition()})
	}
	for _, p := range cfg.GetSlaPolicies() {
		f.SLAPolicies = append(f.SLAPolicies, SLAPolicy{
			Name: p.GetName(), Type: typeName(p.GetType()), Segment: p.GetSegment(), Within: formatDuration(p.GetWithin().AsDuration()),
			SatisfiedBy: p.GetSatisfiedBy(), ReassignOnBreach: p.GetReassignOnBreach(), NotifyManager: p.GetNotifyManager(),
		})
	}
	out, err := yaml.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("encode routing YAML: %w", err)
	}
	return out, nil
}
