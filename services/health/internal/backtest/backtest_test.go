package backtest_test

import (
	"math"
	"math/rand/v2"
	"testing"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"

	"github.com/cairn-dev/cairn/services/health/internal/backtest"
	"github.com/cairn-dev/cairn/services/health/internal/model"
)

func TestAUC(t *testing.T) {
	tests := []struct {
		name     string
		pos, neg []float64
		want     float64
	}{
		{"perfect", []float64{3, 4}, []float64{1, 2}, 1},
		{"inverted", []float64{1, 2}, []float64{3, 4}, 0},
		{"all tied", []float64{5, 5}, []float64{5}, 0.5},
		// pairs: (2>1) (2<3) (4>1) (4>3) -> 3/4
		{"mixed", []float64{2, 4}, []float64{1, 3}, 0.75},
		// pairs: (2=2)->.5 (2>1)->1 -> 1.5/2
		{"tie counts half", []float64{2}, []float64{2, 1}, 0.75},
		{"empty class", nil, []float64{1}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backtest.AUC(tt.pos, tt.neg); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("AUC = %v, want %v", got, tt.want)
			}
		})
	}
}

func btModel() *healthv1.Model {
	return &healthv1.Model{Components: []*healthv1.Component{
		{Name: "usage", Measure: "usage_ratio()", Weight: 80, Linear: &healthv1.LinearRange{From: 0, To: 1}},
		{Name: "noise", Measure: "noise()", Weight: 20, Linear: &healthv1.LinearRange{From: 0, To: 1}},
	}}
}

// generate makes n outcomes; churn depends on usage when linked, else it is
// a fair-ish coin independent of everything.
func generate(n int, linked bool, seed uint64) []backtest.Sample {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]backtest.Sample, n)
	for i := range out {
		usage, noise := rng.Float64(), rng.Float64()
		pChurn := 0.3
		if linked {
			pChurn = 0.9 - 0.85*usage
		}
		out[i] = backtest.Sample{
			Churned: rng.Float64() < pChurn,
			Input: backtest.Input{Values: map[uint64]float64{
				model.MeasureKey("usage_ratio()"): usage, model.MeasureKey("noise()"): noise}},
		}
	}
	return out
}

func TestBacktestRecoversUsageChurnRelationship(t *testing.T) {
	res, err := backtest.Run(btModel(), generate(2000, true, 7), 90)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("linked outcomes: AUC %.3f, bands %v", res.GetAuc(), res.GetBands())
	if res.GetAuc() <= 0.75 {
		t.Fatalf("AUC %v, want > 0.75", res.GetAuc())
	}
	lifts := map[string]*healthv1.ComponentLift{}
	for _, c := range res.GetComponents() {
		lifts[c.GetComponent()] = c
	}
	if u := lifts["usage"]; u.GetAuc() <= 0.75 || u.GetLift() <= 20 {
		t.Errorf("usage component: auc %v lift %v, want auc > 0.75 and lift > 20 points", u.GetAuc(), u.GetLift())
	}
	if n := lifts["noise"]; n.GetAuc() < 0.4 || n.GetAuc() > 0.6 {
		t.Errorf("noise component AUC %v, want 0.4..0.6", n.GetAuc())
	}
	// Churn must fall as the band improves.
	rates := map[healthv1.Band]float64{}
	total := int64(0)
	for _, b := range res.GetBands() {
		rates[b.GetBand()] = b.GetChurnRate()
		total += b.GetAccounts()
	}
	if total != res.GetRenewed()+res.GetChurned() || total != 2000 {
		t.Errorf("bands hold %d accounts, outcomes %d+%d", total, res.GetRenewed(), res.GetChurned())
	}
	if !(rates[healthv1.Band_BAND_AT_RISK] > rates[healthv1.Band_BAND_NEUTRAL] && rates[healthv1.Band_BAND_NEUTRAL] > rates[healthv1.Band_BAND_HEALTHY]) {
		t.Errorf("churn rates by band not ordered: %v", rates)
	}
}

func TestBacktestRandomOutcomesNearChance(t *testing.T) {
	res, err := backtest.Run(btModel(), generate(2000, false, 11), 90)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("random outcomes: AUC %.3f", res.GetAuc())
	if a := res.GetAuc(); a < 0.4 || a > 0.6 {
		t.Fatalf("AUC %v on random outcomes, want 0.4..0.6", a)
	}
}

func TestBacktestMissingHistory(t *testing.T) {
	m := btModel()
	m.Components[1].Measure = "never_recorded()"
	res, err := backtest.Run(m, generate(200, true, 3), 30)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetHorizonDays() != 30 || res.GetAuc() <= 0.7 {
		t.Fatalf("got %+v", res)
	}
	for _, c := range res.GetComponents() {
		if c.GetComponent() == "noise" && (c.GetAuc() != 0.5 || c.GetLift() != 0) {
			t.Errorf("unrecorded measure should carry no signal, got %+v", c)
		}
	}
}

func TestBacktestInvalidModel(t *testing.T) {
	m := btModel()
	m.Components[0].Weight = 10
	if _, err := backtest.Run(m, nil, 90); err == nil {
		t.Fatal("want an error for weights that do not total 100")
	}
}
