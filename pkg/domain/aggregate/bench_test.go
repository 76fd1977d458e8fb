package aggregate_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
)

// BenchmarkMerge measures what the gateway spends merging replicas' parts:
// a funnel of 7 stages with 100,000 finished stays, and a backtest of
// 100,000 outcomes with 5 components, split over 1 and 4 replicas.
//
//	cd pkg && go test -run '^$' -bench Merge -benchmem ./aggregate
func BenchmarkMerge(b *testing.B) {
	const stays, outcomes, stages, components = 100_000, 100_000, 7, 5
	rng := rand.New(rand.NewPCG(1, 2))
	for _, replicas := range []int{1, 4} {
		funnels := make([]*stagesv1.GetFunnelResponse, replicas)
		backtests := make([]*healthv1.BacktestResponse, replicas)
		for r := range replicas {
			funnels[r] = &stagesv1.GetFunnelResponse{Accounts: int64(stays / replicas / 3)}
			for s := range stages {
				row := &stagesv1.FunnelStage{Stage: fmt.Sprint("s", s), Entered: stays / stages / int64(replicas)}
				for range stays / stages / replicas {
					row.TimesInStageNs = append(row.TimesInStageNs, int64(time.Duration(rng.IntN(90*24))*time.Hour))
				}
				funnels[r].Stages = append(funnels[r].Stages, row)
			}
			backtests[r] = &healthv1.BacktestResponse{HorizonDays: 90}
			for c := range components {
				backtests[r].Components = append(backtests[r].Components, &healthv1.ComponentLift{Component: fmt.Sprint("c", c)})
			}
			for range outcomes / replicas {
				pts := make([]float64, components)
				for c := range pts {
					pts[c] = float64(rng.IntN(200)) / 10
				}
				backtests[r].Samples = append(backtests[r].Samples, &healthv1.BacktestSample{
					Churned: rng.IntN(4) == 0, Score: float64(rng.IntN(1000)) / 10, Band: healthv1.Band(1 + rng.IntN(3)), Points: pts,
				})
			}
		}
		b.Run(fmt.Sprintf("funnel/replicas=%d", replicas), func(b *testing.B) {
			for b.Loop() {
				aggregate.Funnel(funnels, false)
			}
		})
		b.Run(fmt.Sprintf("backtest/replicas=%d", replicas), func(b *testing.B) {
			for b.Loop() {
				aggregate.Backtest(backtests, false)
			}
		})
	}
}
