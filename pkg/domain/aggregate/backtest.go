package aggregate

import (
	"cmp"
	"slices"
	"sort"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
)

// backtestBands are the bands a backtest reports, in order.
var backtestBands = []healthv1.Band{healthv1.Band_BAND_HEALTHY, healthv1.Band_BAND_NEUTRAL, healthv1.Band_BAND_AT_RISK}

// Backtest merges backtest parts (BacktestResponse with every outcome's
// sample) into the figures over every sample: renewals and churns, AUC of
// the score (renewal as the positive class), churn rate per band, and per
// component its AUC and mean points among renewals minus among churns. The
// components and horizon are the first part's (every replica tests the
// same model). The samples are taken in one canonical order, so the float
// sums, and so the answer, do not depend on how the accounts were split.
// With keepParts the samples are kept (in that order), else dropped. The
// parts are not modified.
func Backtest(parts []*healthv1.BacktestResponse, keepParts bool) *healthv1.BacktestResponse {
	out := &healthv1.BacktestResponse{}
	var samples []*healthv1.BacktestSample
	for i, p := range parts {
		if i == 0 {
			out.HorizonDays = p.GetHorizonDays()
			for _, c := range p.GetComponents() {
				out.Components = append(out.Components, &healthv1.ComponentLift{Component: c.GetComponent()})
			}
		}
		samples = append(samples, p.GetSamples()...)
	}
	slices.SortFunc(samples, compareSamples)
	bands := make(map[healthv1.Band]*healthv1.BandOutcome, len(backtestBands))
	for _, b := range backtestBands {
		bands[b] = &healthv1.BandOutcome{Band: b}
		out.Bands = append(out.Bands, bands[b])
	}
	var good, bad []float64
	compGood := make([][]float64, len(out.Components))
	compBad := make([][]float64, len(out.Components))
	for _, s := range samples {
		if bo := bands[s.GetBand()]; bo != nil {
			bo.Accounts++
			if s.GetChurned() {
				bo.Churned++
			}
		}
		if s.GetChurned() {
			bad = append(bad, s.GetScore())
		} else {
			good = append(good, s.GetScore())
		}
		for i := range out.Components {
			var pts float64
			if i < len(s.GetPoints()) {
				pts = s.GetPoints()[i]
			}
			if s.GetChurned() {
				compBad[i] = append(compBad[i], pts)
			} else {
				compGood[i] = append(compGood[i], pts)
			}
		}
	}
	out.Renewed, out.Churned, out.Auc = int64(len(good)), int64(len(bad)), AUC(good, bad)
	for _, bo := range out.Bands {
		if bo.Accounts > 0 {
			bo.ChurnRate = float64(bo.Churned) / float64(bo.Accounts)
		}
	}
	for i, c := range out.Components {
		c.Auc = AUC(compGood[i], compBad[i])
		c.Lift = mean(compGood[i]) - mean(compBad[i])
	}
	if keepParts {
		out.Samples = samples
	}
	return out
}

// compareSamples is a total order on samples' contents, so equal samples
// are interchangeable wherever they came from.
func compareSamples(a, b *healthv1.BacktestSample) int {
	if a.GetChurned() != b.GetChurned() {
		if a.GetChurned() {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.GetScore(), b.GetScore()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GetBand(), b.GetBand()); c != 0 {
		return c
	}
	return slices.Compare(a.GetPoints(), b.GetPoints())
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
