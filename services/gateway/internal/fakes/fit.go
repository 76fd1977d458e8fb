package fakes

import (
	"context"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// GetAccountFit answers RoutingService.GetAccountFit for the dashboard's
// Lead fit panel.
func (s routingServer) GetAccountFit(ctx context.Context, req *routingv1.GetAccountFitRequest) (*routingv1.GetAccountFitResponse, error) {
	return s.d.accountFit(ctx, req)
}

// accountFit is a demo account's fit with two PQL rules like the demo
// workspace's: a trial fits the integration rule and misses one criterion
// of the team rule, with its PQL handoff open; a prospect fits neither.
func (d *Demo) accountFit(_ context.Context, req *routingv1.GetAccountFitRequest) (*routingv1.GetAccountFitResponse, error) {
	a, err := d.find(req.GetAccountId())
	if err != nil {
		return nil, err
	}
	trial := a.status() == commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL
	status := strings.ToLower(strings.TrimPrefix(a.status().String(), "ACCOUNT_STATUS_"))
	asOf := timestamppb.New(d.Now.AddDate(0, 0, -1))
	crit := func(expr string, met bool) *routingv1.FitCriterion {
		return &routingv1.FitCriterion{Expr: expr, Met: met}
	}
	fit := &routingv1.AccountFit{
		AccountId: a.id, Lifecycle: a.lifecycleProto(), AsOf: asOf, ConfigVersion: 3,
		Inputs: &routingv1.FitInputs{
			Status: status, Stage: a.stage, Account: map[string]string{"name": a.name, "segment": a.segment},
			Product: &routingv1.ProductActivity{
				ActiveUsers_7D: 2, ActiveUsers_14D: 2, ActiveUsers_30D: 2, FeaturesUsed_7D: 2, FeaturesUsed_14D: 3, FeaturesUsed_30D: 3,
				Features_30D: []string{"report_created", "dashboard_shared", "export_run"}, ProductEvents_7D: 9, ProductEvents_30D: 21,
				KnownUsers: 4, Integrations: 1, FirstEventAt: timestamppb.New(d.Now.AddDate(0, 0, -40)), LastEventAt: asOf,
				Events: []*routingv1.EventActivity{
					{Name: "report_created", Count_7D: 5, Count_30D: 12, Count_400D: 12, FirstSeen: timestamppb.New(d.Now.AddDate(0, 0, -11)), LastSeen: asOf},
					{Name: "integration.connected", Count_7D: 1, Count_30D: 1, Count_400D: 1, FirstSeen: timestamppb.New(d.Now.AddDate(0, 0, -3)), LastSeen: timestamppb.New(d.Now.AddDate(0, 0, -3))},
					{Name: "trial_started", Count_30D: 1, Count_400D: 1, FirstSeen: timestamppb.New(d.Now.AddDate(0, 0, -12)), LastSeen: timestamppb.New(d.Now.AddDate(0, 0, -12))},
				},
			},
		},
		Rules: []*routingv1.PqlRuleFit{
			{Name: "team-trial", Condition: `status == "trial" && active_users("14d") >= 3 && features_used("14d") >= 2`,
				Criteria: []*routingv1.FitCriterion{crit(`status == "trial"`, trial), crit(`active_users("14d") >= 3`, false), crit(`features_used("14d") >= 2`, true)}},
			{Name: "trial-integration", Condition: `status == "trial" && integrations() >= 1`, Holds: trial, Qualified: trial,
				Criteria: []*routingv1.FitCriterion{crit(`status == "trial"`, trial), crit(`integrations() >= 1`, true)}},
		},
	}
	if trial {
		fit.OpenPqlHandoff = &routingv1.Assignment{
			AssignmentId: "as_fit_" + a.id, Type: routingv1.HandoffType_HANDOFF_TYPE_PQL, AccountId: a.id, OwnerId: a.owner,
			State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, Reason: "PQL rule trial-integration",
			CreatedAt: timestamppb.New(d.Now.AddDate(0, 0, -3)), Sla: &routingv1.SlaState{DueAt: timestamppb.New(d.Now.AddDate(0, 0, -3).Add(3600e9))},
		}
	}
	return &routingv1.GetAccountFitResponse{Fit: fit}, nil
}
