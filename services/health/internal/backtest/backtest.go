// Package backtest measures how well a health model's scores, taken some days
// before each renewal or churn, separated the two outcomes. It is pure: the
// caller supplies samples (per-measure raw values recorded in the daily
// snapshot at the horizon) and the package rescores them with the model under
// test, so two model versions can be compared on the same history.
package backtest

import (
	"errors"
	"fmt"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"

	"github.com/cairn-dev/cairn/services/health/internal/model"
)

// Sample is one outcome with the account's recorded measures at the horizon.
type Sample struct {
	// Churned is true for a churn, false for a renewal or expansion.
	Churned bool
	// Input holds the raw measure values recorded at the horizon.
	Input Input
}

// Input is a recorded evaluation: raw values by measure, and the "when"
// expression of the profile that applied then ("" = base components).
type Input struct {
	// Values maps model.MeasureKey of a measure's CEL source to the value it had.
	Values map[uint64]float64
	// When is the applied profile's condition source.
	When string
}

// ErrNoHistory is reported for a measure that no snapshot recorded; it earns
// 0 points, like any failing measure.
var ErrNoHistory = errors.New("no recorded history for this measure")

// Compiler replays recorded values instead of evaluating CEL. A profile
// applies when its condition is the one that applied when recorded.
type Compiler struct{}

var _ model.Compiler = Compiler{}

// Number returns the recorded value of expr.
func (Compiler) Number(expr string) (model.Measure, error) {
	key := model.MeasureKey(expr)
	return func(in any) (float64, error) {
		v, ok := in.(Input).Values[key]
		if !ok {
			return 0, ErrNoHistory
		}
		return v, nil
	}, nil
}

// Bool reports whether expr is the recorded profile condition.
func (Compiler) Bool(expr string) (model.Condition, error) {
	return func(in any) (bool, error) { return in.(Input).When == expr, nil }, nil
}

// Run rescores samples with m and reports AUC (renewed counted as the
// positive class, so higher is better; 0.5 is chance), churn rate per band
// and per-component lift.
func Run(m *healthv1.Model, samples []Sample, horizonDays int32) (*healthv1.BacktestResponse, error) {
	part, err := Part(m, samples, horizonDays)
	if err != nil {
		return nil, err
	}
	return aggregate.Backtest([]*healthv1.BacktestResponse{part}, false), nil
}

// Part rescores samples with m and returns them as a backtest part: the
// model's components (names only), the horizon and every sample's score,
// band and component points, for aggregate.Backtest to turn, alone or
// merged with other replicas' parts, into the figures.
func Part(m *healthv1.Model, samples []Sample, horizonDays int32) (*healthv1.BacktestResponse, error) {
	c, err := model.Compile(m, Compiler{})
	if err != nil {
		return nil, fmt.Errorf("compile model for backtest: %w", err)
	}
	names := c.Components()
	out := &healthv1.BacktestResponse{HorizonDays: horizonDays, Samples: make([]*healthv1.BacktestSample, 0, len(samples))}
	for _, n := range names {
		out.Components = append(out.Components, &healthv1.ComponentLift{Component: n})
	}
	for _, s := range samples {
		r := c.Score(s.Input)
		points := make(map[string]float64, len(r.Components))
		for _, cs := range r.Components {
			points[cs.GetName()] = cs.GetPoints()
		}
		bs := &healthv1.BacktestSample{Churned: s.Churned, Score: r.Score, Band: r.Band, Points: make([]float64, len(names))}
		for i, n := range names {
			bs.Points[i] = points[n]
		}
		out.Samples = append(out.Samples, bs)
	}
	return out, nil
}

// AUC is the Mann-Whitney estimate of P(pos > neg) + P(pos = neg)/2 (see
// aggregate.AUC).
func AUC(pos, neg []float64) float64 { return aggregate.AUC(pos, neg) }
