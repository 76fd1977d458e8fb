package cli

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// partReplica is a stages and health replica holding part of the
// accounts: it answers funnels and backtests only in their parts form, as
// the CLI must ask several replicas.
type partReplica struct {
	funnel   *stagesv1.GetFunnelResponse
	backtest *healthv1.BacktestResponse
}

type stagesPart struct {
	stagesv1.UnimplementedStagesServiceServer
	*partReplica
}

type healthPart struct {
	healthv1.UnimplementedHealthServiceServer
	*partReplica
}

func (p stagesPart) GetFunnel(_ context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	if !req.GetParts() {
		return nil, status.Error(codes.FailedPrecondition, "asked one replica for the whole funnel")
	}
	return p.funnel, nil
}

func (p healthPart) Backtest(_ context.Context, req *healthv1.BacktestRequest) (*healthv1.BacktestResponse, error) {
	if !req.GetParts() {
		return nil, status.Error(codes.FailedPrecondition, "asked one replica for the whole backtest")
	}
	return p.backtest, nil
}

func startPartReplica(t *testing.T, p *partReplica) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	stagesv1.RegisterStagesServiceServer(s, stagesPart{partReplica: p})
	healthv1.RegisterHealthServiceServer(s, healthPart{partReplica: p})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// TestAggregatesOverReplicas checks that funnel and backtest given a list
// of replicas ask each for its part and print the merged figures: medians
// and AUC over every replica's stays and outcomes, not one replica's.
func TestAggregatesOverReplicas(t *testing.T) {
	h := int64(time.Hour)
	a := startPartReplica(t, &partReplica{
		funnel: &stagesv1.GetFunnelResponse{Accounts: 2, Stages: []*stagesv1.FunnelStage{
			{Stage: "trial", Name: "Trial", Entered: 2, Converted: 1, TimesInStageNs: []int64{24 * h, 48 * h}},
		}},
		backtest: &healthv1.BacktestResponse{HorizonDays: 60, Components: []*healthv1.ComponentLift{{Component: "usage"}}, Samples: []*healthv1.BacktestSample{
			{Score: 80, Band: healthv1.Band_BAND_HEALTHY, Points: []float64{40}},
		}},
	})
	b := startPartReplica(t, &partReplica{
		funnel: &stagesv1.GetFunnelResponse{Accounts: 1, Stages: []*stagesv1.FunnelStage{
			{Stage: "trial", Name: "Trial", Entered: 2, Converted: 2, TimesInStageNs: []int64{72 * h, 96 * h}},
		}},
		backtest: &healthv1.BacktestResponse{HorizonDays: 60, Components: []*healthv1.ComponentLift{{Component: "usage"}}, Samples: []*healthv1.BacktestSample{
			{Churned: true, Score: 20, Band: healthv1.Band_BAND_AT_RISK, Points: []float64{0}},
		}},
	})
	list := a + "," + b
	flags := []string{"--addr-stages", list, "--addr-health", list, "--data", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		// 4 stays of 1, 2, 3, 4 days: median the 2nd, p90 the 4th.
		{[]string{"funnel"}, []string{"Accounts: 3", "75.0", "2d", "4d"}},
		{[]string{"backtest", "--horizon", "60"}, []string{"Horizon 60 days: 1 renewed, 1 churned, AUC 1.000", "100.0%"}},
	} {
		code, out, errOut := run(t, "k", append(tc.args, flags...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}
