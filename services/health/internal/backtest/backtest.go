// Package backtest measures how well a health model's scores, taken some days
// before each renewal or churn, separated the two outcomes. It is pure: the
// caller supplies samples (per-measure raw values recorded in the daily
// snapshot at the horizon) and the package rescores them with the model under
// test, so two model versions can be compared on the same history.
package backtest

import (
	"errors"
	"fmt"
	"sort"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"

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
	c, err := model.Compile(m, Compiler{})
	if err != nil {
		return nil, fmt.Errorf("compile model for backtest: %w", err)
	}
	names := c.Components()
	var good, bad []float64
	compGood := make(map[string][]float64, len(names))
	compBad := make(map[string][]float64, len(names))
	bands := map[healthv1.Band]*healthv1.BandOutcome{}
	for _, b := range []healthv1.Band{healthv1.Band_BAND_HEALTHY, healthv1.Band_BAND_NEUTRAL, healthv1.Band_BAND_AT_RISK} {
		bands[b] = &healthv1.BandOutcome{Band: b}
	}
	for _, s := range samples {
		r := c.Score(s.Input)
		points := make(map[string]float64, len(r.Components))
		for _, cs := range r.Components {
			points[cs.GetName()] = cs.GetPoints()
		}
		bo := bands[r.Band]
		bo.Accounts++
		if s.Churned {
			bad = append(bad, r.Score)
			bo.Churned++
		} else {
			good = append(good, r.Score)
		}
		for _, n := range names {
			if s.Churned {
				compBad[n] = append(compBad[n], points[n])
			} else {
				compGood[n] = append(compGood[n], points[n])
			}
		}
	}
	out := &healthv1.BacktestResponse{
		Renewed: int64(len(good)), Churned: int64(len(bad)), Auc: AUC(good, bad), HorizonDays: horizonDays,
	}
	for _, b := range []healthv1.Band{healthv1.Band_BAND_HEALTHY, healthv1.Band_BAND_NEUTRAL, healthv1.Band_BAND_AT_RISK} {
		bo := bands[b]
		if bo.Accounts > 0 {
			bo.ChurnRate = float64(bo.Churned) / float64(bo.Accounts)
		}
		out.Bands = append(out.Bands, bo)
	}
	for _, n := range names {
		out.Components = append(out.Components, &healthv1.ComponentLift{
			Component: n, Auc: AUC(compGood[n], compBad[n]), Lift: mean(compGood[n]) - mean(compBad[n]),
		})
	}
	return out, nil
}

// AUC is the Mann-Whitney estimate of P(pos > neg) + P(pos = neg)/2. It is
// 0.5 when either class is empty, as nothing is separated.
func AUC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return 0.5
	}
	type item struct {
		v   float64
		pos bool
	}
	all := make([]item, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, item{v, true})
	}
	for _, v := range neg {
		all = append(all, item{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	rankSum := 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		avg := float64(i+j+1) / 2 // mean of 1-based ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += avg
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
