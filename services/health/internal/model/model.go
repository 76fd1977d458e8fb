// Package model holds health models: their YAML form, their validation, the
// built-in default model and the scoring arithmetic. It is pure: measures are
// evaluated through a Compiler supplied by the caller, so the package does no
// I/O and does not know how account aggregates are stored.
package model

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strings"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// Default band boundaries, used when a model leaves them at zero.
const (
	DefaultHealthy = 80
	DefaultNeutral = 60
)

// Limits on model size, so that a hostile model cannot exhaust the server.
const (
	MaxComponents = 64
	MaxProfiles   = 16
	MaxThresholds = 32
	MaxExprLen    = 4096
	MaxNameLen    = 64
	MaxYAMLBytes  = 256 << 10
)

// Measure evaluates a compiled numeric expression against one account input.
type Measure func(in any) (float64, error)

// Condition evaluates a compiled boolean expression against one account input.
type Condition func(in any) (bool, error)

// Compiler turns CEL source into evaluable programs. The health service
// supplies one built on its account aggregates; tests supply fakes.
type Compiler interface {
	// Number compiles an expression that must yield a number.
	Number(expr string) (Measure, error)
	// Bool compiles an expression that must yield a bool.
	Bool(expr string) (Condition, error)
}

// ErrInvalid marks a model that failed validation; the wrapped message lists
// every problem.
var ErrInvalid = errors.New("invalid model")

// ValidationError is a list of problems found in a model.
type ValidationError struct {
	// Problems holds one entry per bad element.
	Problems []*commonv1.ValidationError
}

// Error joins the problems into one line.
func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.GetPath()+": "+p.GetMessage())
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets callers test errors.Is(err, ErrInvalid).
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// ParseYAML decodes a model written in YAML (field names as in the proto,
// snake_case or lowerCamelCase). Unknown fields are rejected so that typos do
// not silently vanish, and so are a second YAML document and numbers that
// are NaN, infinite or out of range, by line and field.
func ParseYAML(src []byte) (*healthv1.Model, error) {
	if len(src) > MaxYAMLBytes {
		return nil, &ValidationError{Problems: []*commonv1.ValidationError{{Path: "yaml", Message: fmt.Sprintf("larger than %d bytes", MaxYAMLBytes)}}}
	}
	// A second document would be dropped and .nan would fail below
	// without a line or a field; yamldoc names both.
	if err := yamldoc.Check(src); err != nil {
		var ye *yamldoc.Error
		if errors.As(err, &ye) && ye.Path != "" {
			return nil, &ValidationError{Problems: []*commonv1.ValidationError{{Path: ye.Path, Message: ye.Message()}}}
		}
		return nil, &ValidationError{Problems: []*commonv1.ValidationError{{Path: "yaml", Message: err.Error()}}}
	}
	js, err := yaml.YAMLToJSON(src)
	if err != nil {
		return nil, &ValidationError{Problems: []*commonv1.ValidationError{{Path: "yaml", Message: err.Error()}}}
	}
	m := &healthv1.Model{}
	if string(js) == "null" {
		return m, nil
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return nil, &ValidationError{Problems: []*commonv1.ValidationError{{Path: "yaml", Message: err.Error()}}}
	}
	return m, nil
}

// DumpYAML renders a model as YAML with snake_case field names.
func DumpYAML(m *healthv1.Model) (string, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("marshal model to json: %w", err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return "", fmt.Errorf("convert model json to yaml: %w", err)
	}
	return string(y), nil
}

// Bands returns the model's band boundaries with defaults filled in.
func Bands(m *healthv1.Model) (healthy, neutral float64) {
	healthy, neutral = m.GetBands().GetHealthy(), m.GetBands().GetNeutral()
	if healthy == 0 {
		healthy = DefaultHealthy
	}
	if neutral == 0 {
		neutral = DefaultNeutral
	}
	return healthy, neutral
}

// BandOf classifies a score.
func BandOf(score, healthy, neutral float64) healthv1.Band {
	switch {
	case score >= healthy:
		return healthv1.Band_BAND_HEALTHY
	case score >= neutral:
		return healthv1.Band_BAND_NEUTRAL
	default:
		return healthv1.Band_BAND_AT_RISK
	}
}

// Points applies a component's scoring rule to a raw value. Thresholds: the
// highest min not above the value wins, and a value below every min earns 0.
// Linear: [from, to] maps onto [0, 100], clamped, reversed when from > to.
func Points(c *healthv1.Component, raw float64) float64 {
	if math.IsNaN(raw) {
		return 0
	}
	if len(c.GetThresholds()) > 0 {
		best, found := 0.0, false
		bestMin := math.Inf(-1)
		for _, t := range c.GetThresholds() {
			if raw >= t.GetMin() && t.GetMin() >= bestMin {
				best, bestMin, found = t.GetPoints(), t.GetMin(), true
			}
		}
		if !found {
			return 0
		}
		return best
	}
	l := c.GetLinear()
	if l == nil || l.GetFrom() == l.GetTo() {
		return 0
	}
	p := (raw - l.GetFrom()) / (l.GetTo() - l.GetFrom()) * 100
	return math.Max(0, math.Min(100, p))
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns a fresh copy of the built-in default model.
func Default() (*healthv1.Model, error) {
	m, err := ParseYAML(defaultYAML)
	if err != nil {
		return nil, fmt.Errorf("parse built-in default model: %w", err)
	}
	return m, nil
}
