package model_test

import (
	"testing"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/services/health/internal/model"
)

func TestFollow(t *testing.T) {
	comps := func(points float64) []*healthv1.ComponentScore {
		return []*healthv1.ComponentScore{{Name: "usage", Points: points, Weight: 100, Contribution: points}}
	}
	neutral, healthy := healthv1.Band_BAND_NEUTRAL, healthv1.Band_BAND_HEALTHY
	oldChanges := []*healthv1.Change{{Component: "usage", PreviousContribution: 50, Contribution: 70, Reason: "earlier"}}
	prev := &healthv1.AccountHealth{Score: 70, Band: neutral, Components: comps(70), PreviousScore: 50, Changes: oldChanges, ModelVersion: 1}
	tests := []struct {
		name            string
		score           float64
		band            healthv1.Band
		profile         string
		modelVersion    uint32
		prev            *healthv1.AccountHealth
		pr              model.Priors
		moved           bool
		previousScore   float64
		keepsChanges    bool
		trend7, trend30 float64
		direction       string
	}{
		{name: "first score", score: 70, band: neutral, modelVersion: 1, moved: true, previousScore: 70, direction: "flat"},
		{name: "unchanged keeps the explanation", score: 70.004, band: neutral, modelVersion: 1, prev: prev,
			previousScore: 50, keepsChanges: true, direction: "flat"},
		{name: "moved", score: 70.01, band: neutral, modelVersion: 1, prev: prev, moved: true, previousScore: 70, direction: "flat"},
		{name: "new band", score: 70, band: healthy, modelVersion: 1, prev: prev, moved: true, previousScore: 70, direction: "flat"},
		{name: "new profile explains", score: 70, band: neutral, profile: "onboarding", modelVersion: 1, prev: prev, previousScore: 70, direction: "flat"},
		{name: "new model version explains", score: 70, band: neutral, modelVersion: 2, prev: prev, previousScore: 70, direction: "flat"},
		{name: "rising", score: 80, band: healthy, prev: prev, moved: true, previousScore: 70,
			pr: model.Priors{D7: 77.994, Has7: true, D30: 90, Has30: true}, trend7: 2.01, trend30: -10, direction: "up"},
		{name: "flat at two points", score: 72, band: neutral, prev: prev, moved: true, previousScore: 70,
			pr: model.Priors{D7: 70, Has7: true}, trend7: 2, direction: "flat"},
		{name: "falling", score: 60, band: neutral, prev: prev, moved: true, previousScore: 70,
			pr: model.Priors{D7: 62.5, Has7: true}, trend7: -2.5, direction: "down"},
		{name: "no priors, no trend", score: 60, band: neutral, prev: prev, moved: true, previousScore: 70,
			pr: model.Priors{D7: 10, D30: 10}, direction: "flat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &healthv1.AccountHealth{Score: tt.score, Band: tt.band, Components: comps(tt.score), Profile: tt.profile,
				ModelVersion: tt.modelVersion, PreviousScore: tt.score}
			moved := model.Follow(h, tt.prev, tt.pr)
			if moved != tt.moved || h.GetPreviousScore() != tt.previousScore || h.GetTrend_7D() != tt.trend7 ||
				h.GetTrend_30D() != tt.trend30 || h.GetDirection() != tt.direction {
				t.Fatalf("moved %v previous %v trends %v %v direction %q; want %v %v %v %v %q", moved, h.GetPreviousScore(),
					h.GetTrend_7D(), h.GetTrend_30D(), h.GetDirection(), tt.moved, tt.previousScore, tt.trend7, tt.trend30, tt.direction)
			}
			kept := len(h.GetChanges()) == 1 && proto.Equal(h.GetChanges()[0], oldChanges[0])
			if kept != tt.keepsChanges {
				t.Fatalf("changes %v; want prev's kept: %v", h.GetChanges(), tt.keepsChanges)
			}
		})
	}
}
