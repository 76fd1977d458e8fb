package model

import (
	"math"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
)

// Priors are an account's scores 7 and 30 days before an evaluation (from
// its daily snapshots), for the trends; Has7 and Has30 are false when there
// is none.
type Priors struct {
	D7, D30     float64
	Has7, Has30 bool
}

// Follow fills the fields of a new health h that relate it to the
// account's past: PreviousScore and Changes from prev, the previous health
// (nil: never scored), and Trend_7D, Trend_30D and Direction from pr. h's
// score, band, components, profile and model version must be set. It
// reports whether the score moved: a first score, a change of at least
// 0.005 points or a new band, which is what gets published.
//
// While the score, band, profile and model version stay as they were, h
// keeps prev's previous score and changes, so that an explanation survives
// evaluations that change nothing.
func Follow(h, prev *healthv1.AccountHealth, pr Priors) (moved bool) {
	moved = prev == nil || math.Abs(prev.GetScore()-h.GetScore()) >= 0.005 || prev.GetBand() != h.GetBand()
	if prev != nil {
		if moved || prev.GetProfile() != h.GetProfile() || prev.GetModelVersion() != h.GetModelVersion() {
			h.PreviousScore = prev.GetScore()
			h.Changes = Changes(prev.GetComponents(), h.GetComponents(), prev.GetProfile(), h.GetProfile())
		} else {
			h.PreviousScore, h.Changes = prev.GetPreviousScore(), prev.GetChanges()
		}
	}
	h.Trend_7D, h.Trend_30D = trend(h.GetScore(), pr.D7, pr.Has7), trend(h.GetScore(), pr.D30, pr.Has30)
	h.Direction = Direction(h.Trend_7D)
	return moved
}

// trend is the change from prior to score in hundredths of a point; 0 when
// there is no prior.
func trend(score, prior float64, ok bool) float64 {
	if !ok {
		return 0
	}
	return math.Round((score-prior)*100) / 100
}

// Direction names a 7-day trend: "up" above 2 points, "down" below -2,
// "flat" between.
func Direction(trend7d float64) string {
	switch {
	case trend7d > 2:
		return "up"
	case trend7d < -2:
		return "down"
	}
	return "flat"
}
