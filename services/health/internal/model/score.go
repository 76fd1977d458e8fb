package model

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
)

// Result is one account's score under a compiled model.
type Result struct {
	// Score is sum(points*weight/100), rounded to 0.01, in [0, 100].
	Score float64
	// Band classifies Score with the model's boundaries.
	Band healthv1.Band
	// Profile names the profile that applied; empty for the base components.
	Profile string
	// Components explains every component, in model order.
	Components []*healthv1.ComponentScore
	// Measures holds each component's CEL source, parallel to Components.
	// It is shared between results: read only.
	Measures []string
	// Keys holds MeasureKey of each measure, parallel to Components;
	// snapshots key raw values by it so other models can be backtested.
	// It is shared between results: read only.
	Keys []uint64
	// When is the applied profile's condition source ("" for the base components).
	When string
}

// Score evaluates the model for one account input. A measure that fails to
// evaluate earns 0 points and reports its error, so one broken component
// cannot hide the rest of the explanation.
func (c *Compiled) Score(in any) Result {
	comps, ids, prof, when := c.base, &c.baseIDs, "", ""
	for i := range c.profiles {
		p := &c.profiles[i]
		ok, err := p.when(in)
		if err == nil && ok {
			comps, ids, prof, when = p.comps, &p.ids, p.name, p.whenSrc
			break
		}
	}
	res := Result{Profile: prof, When: when, Components: make([]*healthv1.ComponentScore, 0, len(comps)),
		Measures: ids.measures, Keys: ids.keys}
	// One allocation for all component scores.
	scores := make([]healthv1.ComponentScore, len(comps))
	total := 0.0
	for i := range comps {
		cc := &comps[i]
		cs := &scores[i]
		cs.Name, cs.Weight = cc.def.GetName(), cc.def.GetWeight()
		raw, err := cc.measure(in)
		if err == nil && (math.IsNaN(raw) || math.IsInf(raw, 0)) {
			err = fmt.Errorf("measure returned %g", raw)
		}
		if err != nil {
			cs.Error = err.Error()
			cs.Explanation = "measure failed; 0 points"
		} else {
			cs.RawValue = raw
			cs.Points = Points(cc.def, raw)
			cs.Explanation = cc.texts.explain(cc.def, raw, cs.Points)
		}
		cs.Contribution = round2(cs.Points * cs.Weight / 100)
		total += cs.Points * cs.Weight / 100
		res.Components = append(res.Components, cs)
	}
	res.Score = round2(math.Max(0, math.Min(100, total)))
	res.Band = BandOf(res.Score, c.healthy, c.neutral)
	return res
}

// BandOf classifies a score with this model's boundaries.
func (c *Compiled) BandOf(score float64) healthv1.Band { return BandOf(score, c.healthy, c.neutral) }

// Components lists the names of every component the model can produce,
// base components first, then each profile's, without duplicates.
func (c *Compiled) Components() []string {
	var out []string
	seen := map[string]bool{}
	add := func(cs []component) {
		for _, cc := range cs {
			if !seen[cc.def.GetName()] {
				seen[cc.def.GetName()] = true
				out = append(out, cc.def.GetName())
			}
		}
	}
	add(c.base)
	for _, p := range c.profiles {
		add(p.comps)
	}
	return out
}

// explainer holds the parts of a component's explanations that do not
// depend on the raw value, formatted once when the model is compiled: a
// full rescore explains about a million components.
type explainer struct {
	// linear is " on a linear range <from>..<to> gives " for a linear rule.
	linear string
	// thresholds[i] is " >= <min> gives <points> points" for threshold i.
	thresholds []string
}

func newExplainer(c *healthv1.Component) explainer {
	var x explainer
	if l := c.GetLinear(); l != nil {
		x.linear = " on a linear range " + num(l.GetFrom()) + ".." + num(l.GetTo()) + " gives "
		return x
	}
	for _, t := range c.GetThresholds() {
		x.thresholds = append(x.thresholds, " >= "+num(t.GetMin())+" gives "+num(t.GetPoints())+" points")
	}
	return x
}

// explain says how raw earned points (Points(c, raw)) under component c;
// for thresholds those are the points of the threshold picked here too.
func (x *explainer) explain(c *healthv1.Component, raw, points float64) string {
	b := make([]byte, 0, 64)
	b = appendNum(b, raw)
	if c.GetLinear() != nil {
		b = append(b, x.linear...)
		b = appendNum(b, points)
		return string(append(b, " points"...))
	}
	// The threshold that Points picked: the highest min not above raw.
	minV, best := math.Inf(-1), -1
	for i, t := range c.GetThresholds() {
		if raw >= t.GetMin() && t.GetMin() >= minV {
			minV, best = t.GetMin(), i
		}
	}
	if best < 0 {
		return string(append(b, " is below every threshold: 0 points"...))
	}
	return string(append(b, x.thresholds[best]...))
}

// Changes explains how each component's contribution moved since the
// previous score. Components that did not move are left out.
func Changes(prev, cur []*healthv1.ComponentScore, prevProfile, curProfile string) []*healthv1.Change {
	// Models have a handful of components: linear lookups cost less than
	// the two maps, and the incremental path runs this after most events.
	lookup := func(list []*healthv1.ComponentScore, name string) (*healthv1.ComponentScore, bool) {
		for i := len(list) - 1; i >= 0; i-- { // the last of a name, as a map built in order keeps
			if list[i].GetName() == name {
				return list[i], true
			}
		}
		return nil, false
	}
	if len(prev) > maxLinearComponents || len(cur) > maxLinearComponents {
		before := make(map[string]*healthv1.ComponentScore, len(prev))
		for _, p := range prev {
			before[p.GetName()] = p
		}
		seen := make(map[string]bool, len(cur))
		for _, c := range cur {
			seen[c.GetName()] = true
		}
		return changes(prev, cur, prevProfile, curProfile,
			func(name string) (*healthv1.ComponentScore, bool) { p, ok := before[name]; return p, ok },
			func(name string) bool { return seen[name] })
	}
	return changes(prev, cur, prevProfile, curProfile,
		func(name string) (*healthv1.ComponentScore, bool) { return lookup(prev, name) },
		func(name string) bool { _, ok := lookup(cur, name); return ok })
}

// maxLinearComponents is the component count up to which Changes looks
// components up by scanning instead of building maps.
const maxLinearComponents = 32

func changes(prev, cur []*healthv1.ComponentScore, prevProfile, curProfile string,
	before func(string) (*healthv1.ComponentScore, bool), inCur func(string) bool) []*healthv1.Change {
	var out []*healthv1.Change
	for _, c := range cur {
		p, ok := before(c.GetName())
		switch {
		case !ok && prev == nil:
			continue // first score: nothing changed
		case !ok:
			out = append(out, &healthv1.Change{Component: c.GetName(), Contribution: c.GetContribution(),
				Reason: profileReason(prevProfile, curProfile, "component added")})
		case math.Abs(p.GetContribution()-c.GetContribution()) >= 0.005:
			out = append(out, &healthv1.Change{Component: c.GetName(), PreviousContribution: p.GetContribution(),
				Contribution: c.GetContribution(),
				Reason: fmt.Sprintf("raw value %s -> %s, points %s -> %s", num(p.GetRawValue()), num(c.GetRawValue()),
					num(p.GetPoints()), num(c.GetPoints()))})
		}
	}
	for _, p := range prev {
		if !inCur(p.GetName()) {
			out = append(out, &healthv1.Change{Component: p.GetName(), PreviousContribution: p.GetContribution(),
				Reason: profileReason(prevProfile, curProfile, "component removed")})
		}
	}
	return out
}

func profileReason(prev, cur, what string) string {
	name := func(s string) string {
		if s == "" {
			return "base model"
		}
		return "profile " + s
	}
	if prev != cur {
		return fmt.Sprintf("%s: %s -> %s", what, name(prev), name(cur))
	}
	return what + ": model changed"
}

// MeasureKey is a short stable key for a measure's CEL source: FNV-1a 64.
// Daily snapshots store raw values under it instead of the source text,
// which would dominate their size; a collision needs two different
// measures with the same 64-bit hash.
func MeasureKey(expr string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(expr))
	return h.Sum64()
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func num(f float64) string { return strconv.FormatFloat(round2x(f), 'f', -1, 64) }

// appendNum appends num(f). Whole numbers, the usual raw values (counts,
// points), take the much cheaper integer formatting; the text is the same.
func appendNum(b []byte, f float64) []byte {
	r := round2x(f)
	if i := int64(r); float64(i) == r && r > -1e15 && r < 1e15 && (i != 0 || !math.Signbit(r)) {
		return strconv.AppendInt(b, i, 10)
	}
	return strconv.AppendFloat(b, r, 'f', -1, 64)
}

// round2x rounds to 4 decimals for display, enough for ratios.
func round2x(f float64) float64 { return math.Round(f*1e4) / 1e4 }
