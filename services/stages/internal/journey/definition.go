// Package journey holds the journey-definition model, its YAML form, its
// validation and compilation into CEL programs, the built-in templates, and
// the pure evaluation that places an account in a stage and raises drop-off
// signals. It does no I/O.
package journey

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"
)

// MaxYAMLBytes bounds a YAML definition.
const MaxYAMLBytes = 256 << 10

// Definition is the YAML form of a journey (see docs/journeys.md).
type Definition struct {
	// ID is the journey id within the workspace, e.g. "b2b".
	ID string `yaml:"id"`
	// Name is the display name.
	Name string `yaml:"name,omitempty"`
	// Description says what the journey is for.
	Description string `yaml:"description,omitempty"`
	// Template names the built-in template the definition came from.
	Template string `yaml:"template,omitempty"`
	// Features are event names counted by features_used().
	Features []string `yaml:"features,omitempty"`
	// IntegrationEvents are event names that connect an integration.
	IntegrationEvents []string `yaml:"integration_events,omitempty"`
	// ActivityEvents are event names that make a user active; empty means any product event.
	ActivityEvents []string `yaml:"activity_events,omitempty"`
	// Stages in order.
	Stages []StageDef `yaml:"stages"`
}

// StageDef is one stage in YAML.
type StageDef struct {
	// ID is the stable stage id, e.g. "onboarding".
	ID string `yaml:"id"`
	// Name is the display name.
	Name string `yaml:"name,omitempty"`
	// Owner is the owning team(s), e.g. "CS+Implementation".
	Owner string `yaml:"owner,omitempty"`
	// Metrics the owning team watches.
	Metrics []string `yaml:"metrics,omitempty"`
	// Entry criteria: all must hold to enter.
	Entry []CriterionDef `yaml:"entry,omitempty"`
	// Exit criteria: all must hold for the stage to be done.
	Exit []CriterionDef `yaml:"exit,omitempty"`
	// Dropoff criteria: each one holding raises a drop-off signal.
	Dropoff []CriterionDef `yaml:"dropoff,omitempty"`
	// Moves are stage ids reachable besides the next stage (regressions, loops).
	Moves []string `yaml:"moves,omitempty"`
}

// CriterionDef is one named CEL expression in YAML.
type CriterionDef struct {
	// Name is unique within its list.
	Name string `yaml:"name"`
	// Expr is a CEL expression returning bool.
	Expr string `yaml:"expr"`
	// Description explains the criterion to people.
	Description string `yaml:"description,omitempty"`
	// CheckAfter ("14d", "2w", "36h") arms a durable timer after stage entry.
	CheckAfter string `yaml:"check_after,omitempty"`
}

// ParseYAML decodes a YAML definition, rejecting unknown fields, a second
// YAML document (which the decoder would silently drop) and numbers that
// are NaN, infinite or out of range, by line and field.
func ParseYAML(data []byte) (*Definition, error) {
	if len(data) > MaxYAMLBytes {
		return nil, fmt.Errorf("parse journey YAML: longer than %d bytes", MaxYAMLBytes)
	}
	if err := yamldoc.Check(data); err != nil {
		return nil, fmt.Errorf("parse journey YAML: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("parse journey YAML: %w", err)
	}
	return &d, nil
}

// YAML encodes the definition.
func (d *Definition) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode journey YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode journey YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseDuration reads "14d", "2w" or a Go duration such as "36h".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.Atoi(s[:n-1])
		if err != nil || v <= 0 || v > 3650 {
			return 0, fmt.Errorf("duration %q: want a positive number of days or weeks", s)
		}
		day := 24 * time.Hour
		if s[n-1] == 'w' {
			day *= 7
		}
		return time.Duration(v) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want e.g. \"14d\", \"2w\" or \"36h\"", s)
	}
	return d, nil
}

// FormatDuration writes whole days as "14d" and anything else as a Go duration.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// ToProto converts the YAML form to the API message. Durations that do not
// parse are reported later by Validate, so they are dropped here with an error.
func (d *Definition) ToProto() (*stagesv1.JourneyDefinition, []*commonv1.ValidationError) {
	var errs []*commonv1.ValidationError
	out := &stagesv1.JourneyDefinition{
		Id: d.ID, Name: d.Name, Description: d.Description, Template: d.Template,
		Features: d.Features, IntegrationEvents: d.IntegrationEvents, ActivityEvents: d.ActivityEvents,
	}
	for i, s := range d.Stages {
		ps := &stagesv1.Stage{Id: s.ID, Name: s.Name, OwnerTeam: s.Owner, Metrics: s.Metrics, AllowedMoves: s.Moves}
		conv := func(list []CriterionDef, kind string) []*stagesv1.Criterion {
			var cs []*stagesv1.Criterion
			for j, c := range list {
				pc := &stagesv1.Criterion{Name: c.Name, Expr: c.Expr, Description: c.Description}
				if c.CheckAfter != "" {
					dur, err := ParseDuration(c.CheckAfter)
					if err != nil {
						errs = append(errs, &commonv1.ValidationError{Path: criterionPath(stageKey(s.ID, i), kind, c.Name, j) + ".check_after", Message: err.Error()})
					} else {
						pc.CheckAfter = durationpb.New(dur)
					}
				}
				cs = append(cs, pc)
			}
			return cs
		}
		ps.Entry = conv(s.Entry, "entry")
		ps.Exit = conv(s.Exit, "exit")
		ps.Dropoff = conv(s.Dropoff, "dropoff")
		out.Stages = append(out.Stages, ps)
	}
	return out, errs
}

// FromProto converts the API message to the YAML form.
func FromProto(p *stagesv1.JourneyDefinition) *Definition {
	d := &Definition{
		ID: p.GetId(), Name: p.GetName(), Description: p.GetDescription(), Template: p.GetTemplate(),
		Features: p.GetFeatures(), IntegrationEvents: p.GetIntegrationEvents(), ActivityEvents: p.GetActivityEvents(),
	}
	for _, s := range p.GetStages() {
		sd := StageDef{ID: s.GetId(), Name: s.GetName(), Owner: s.GetOwnerTeam(), Metrics: s.GetMetrics(), Moves: s.GetAllowedMoves()}
		conv := func(list []*stagesv1.Criterion) []CriterionDef {
			var cs []CriterionDef
			for _, c := range list {
				cd := CriterionDef{Name: c.GetName(), Expr: c.GetExpr(), Description: c.GetDescription()}
				if c.GetCheckAfter() != nil {
					cd.CheckAfter = FormatDuration(c.GetCheckAfter().AsDuration())
				}
				cs = append(cs, cd)
			}
			return cs
		}
		sd.Entry, sd.Exit, sd.Dropoff = conv(s.GetEntry()), conv(s.GetExit()), conv(s.GetDropoff())
		d.Stages = append(d.Stages, sd)
	}
	return d
}

// ProtoFromYAML parses YAML into the API message, returning parse problems
// as validation errors at path "yaml".
func ProtoFromYAML(data []byte) (*stagesv1.JourneyDefinition, []*commonv1.ValidationError) {
	d, err := ParseYAML(data)
	if err != nil {
		return nil, []*commonv1.ValidationError{{Path: "yaml", Message: err.Error()}}
	}
	return d.ToProto()
}

// ProtoYAML renders the API message as YAML.
func ProtoYAML(p *stagesv1.JourneyDefinition) (string, error) {
	b, err := FromProto(p).YAML()
	return string(b), err
}

func stageKey(id string, i int) string {
	if id == "" {
		return strconv.Itoa(i)
	}
	return id
}

func criterionPath(stage, kind, name string, j int) string {
	if name == "" {
		name = strconv.Itoa(j)
	}
	return fmt.Sprintf("stages[%s].%s[%s]", stage, kind, name)
}
