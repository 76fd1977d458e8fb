package model

import (
	"fmt"
	"math"
	"regexp"
	"strconv"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
)

// namePattern keeps component, profile and model ids usable as map keys,
// signal reasons and YAML keys without quoting.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_\-]{0,63}$`)

// Compiled is a validated model whose measures are ready to evaluate. It is
// immutable and safe for concurrent use if the Compiler's programs are.
type Compiled struct {
	// Model is the source definition.
	Model    *healthv1.Model
	healthy  float64
	neutral  float64
	base     []component
	profiles []profile
	// baseIDs are the measures and keys of base (Result.Measures, .Keys).
	baseIDs measureIDs
}

// measureIDs lists a component list's measure sources and keys once, so
// every Result shares them instead of building them per account.
type measureIDs struct {
	measures []string
	keys     []uint64
}

func idsOf(comps []component) measureIDs {
	var ids measureIDs
	for _, cc := range comps {
		ids.measures = append(ids.measures, cc.def.GetMeasure())
		ids.keys = append(ids.keys, cc.key)
	}
	return ids
}

type component struct {
	def     *healthv1.Component
	measure Measure
	key     uint64
	// texts are the constant parts of the explanations (see explainer).
	texts explainer
}

type profile struct {
	name    string
	whenSrc string
	when    Condition
	comps   []component
	ids     measureIDs
}

// Compile validates m and compiles every expression. On failure the error is
// a *ValidationError listing every problem.
func Compile(m *healthv1.Model, c Compiler) (*Compiled, error) {
	v := &validator{c: c}
	out := &Compiled{Model: m}
	if m.GetId() != "" && !namePattern.MatchString(m.GetId()) {
		v.add("id", "must match "+namePattern.String())
	}
	out.healthy, out.neutral = Bands(m)
	// NaN compares false with everything, so it is refused by name.
	if bad(out.healthy) || bad(out.neutral) || out.healthy > 100 || out.neutral <= 0 || out.healthy <= out.neutral {
		v.add("bands", fmt.Sprintf("want 0 < neutral (%g) < healthy (%g) <= 100", out.neutral, out.healthy))
	}
	out.base = v.components("components", m.GetComponents())
	out.baseIDs = idsOf(out.base)
	if len(m.GetProfiles()) > MaxProfiles {
		v.add("profiles", fmt.Sprintf("more than %d profiles", MaxProfiles))
	}
	seen := map[string]bool{}
	for i, p := range m.GetProfiles() {
		path := fmt.Sprintf("profiles[%d]", i)
		if namePattern.MatchString(p.GetName()) {
			path = "profiles[" + p.GetName() + "]"
		} else {
			v.add(path+".name", "must match "+namePattern.String())
		}
		if seen[p.GetName()] {
			v.add(path+".name", "duplicate profile name")
		}
		seen[p.GetName()] = true
		cp := profile{name: p.GetName(), whenSrc: p.GetWhen()}
		switch {
		case p.GetWhen() == "":
			v.add(path+".when", "required")
		case len(p.GetWhen()) > MaxExprLen:
			v.add(path+".when", fmt.Sprintf("longer than %d characters", MaxExprLen))
		default:
			cond, err := c.Bool(p.GetWhen())
			if err != nil {
				v.add(path+".when", err.Error())
			}
			cp.when = cond
		}
		cp.comps = v.components(path+".components", p.GetComponents())
		cp.ids = idsOf(cp.comps)
		out.profiles = append(out.profiles, cp)
	}
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return out, nil
}

// Validate reports every problem of m; an empty result means m is valid.
func Validate(m *healthv1.Model, c Compiler) []*commonv1.ValidationError {
	_, err := Compile(m, c)
	if ve, ok := err.(*ValidationError); ok {
		return ve.Problems
	}
	return nil
}

type validator struct {
	c        Compiler
	problems []*commonv1.ValidationError
}

func (v *validator) add(path, msg string) {
	v.problems = append(v.problems, &commonv1.ValidationError{Path: path, Message: msg})
}

func (v *validator) components(prefix string, comps []*healthv1.Component) []component {
	if len(comps) == 0 {
		v.add(prefix, "at least one component is required")
		return nil
	}
	if len(comps) > MaxComponents {
		v.add(prefix, fmt.Sprintf("more than %d components", MaxComponents))
		return nil
	}
	out := make([]component, 0, len(comps))
	seen := map[string]bool{}
	total := 0.0
	for i, c := range comps {
		path := fmt.Sprintf("%s[%d]", prefix, i)
		if namePattern.MatchString(c.GetName()) {
			path = prefix + "[" + c.GetName() + "]"
		} else {
			v.add(path+".name", "must match "+namePattern.String())
		}
		if seen[c.GetName()] {
			v.add(path+".name", "duplicate component name")
		}
		seen[c.GetName()] = true
		cc := component{def: c, key: MeasureKey(c.GetMeasure()), texts: newExplainer(c)}
		switch {
		case c.GetMeasure() == "":
			v.add(path+".measure", "required")
		case len(c.GetMeasure()) > MaxExprLen:
			v.add(path+".measure", fmt.Sprintf("longer than %d characters", MaxExprLen))
		default:
			m, err := v.c.Number(c.GetMeasure())
			if err != nil {
				v.add(path+".measure", err.Error())
			}
			cc.measure = m
		}
		w := c.GetWeight()
		if math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 || w > 100 {
			v.add(path+".weight", fmt.Sprintf("must be in (0, 100], got %g", w))
		} else {
			total += w
		}
		v.rule(path, c)
		out = append(out, cc)
	}
	if math.Abs(total-100) > 1e-6 {
		v.add(prefix, "weights total "+strconv.FormatFloat(total, 'g', -1, 64)+", want 100")
	}
	return out
}

func (v *validator) rule(path string, c *healthv1.Component) {
	ts, l := c.GetThresholds(), c.GetLinear()
	switch {
	case len(ts) > 0 && l != nil:
		v.add(path, "set either thresholds or linear, not both")
	case len(ts) == 0 && l == nil:
		v.add(path, "set thresholds or linear")
	case len(ts) > MaxThresholds:
		v.add(path+".thresholds", fmt.Sprintf("more than %d thresholds", MaxThresholds))
	case l != nil:
		if bad(l.GetFrom()) || bad(l.GetTo()) || l.GetFrom() == l.GetTo() {
			v.add(path+".linear", fmt.Sprintf("from (%g) and to (%g) must be finite and differ", l.GetFrom(), l.GetTo()))
		}
	default:
		for i, t := range ts {
			tp := fmt.Sprintf("%s.thresholds[%d]", path, i)
			if bad(t.GetMin()) {
				v.add(tp+".min", "must be finite")
			}
			if bad(t.GetPoints()) || t.GetPoints() < 0 || t.GetPoints() > 100 {
				v.add(tp+".points", fmt.Sprintf("must be in [0, 100], got %g", t.GetPoints()))
			}
			if i > 0 && t.GetMin() <= ts[i-1].GetMin() {
				v.add(tp+".min", fmt.Sprintf("must be above the previous min (%g)", ts[i-1].GetMin()))
			}
		}
	}
}

func bad(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
