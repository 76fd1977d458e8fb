package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// TestFunnelQueryParameters: the funnel's date range, conversion window,
// plan, breakdown, trend and account-list parameters reach stages as the
// request fields they name, and the journeys list has its route.
func TestFunnelQueryParameters(t *testing.T) {
	e := newConventionsEnv(t)
	ts := func(s string) *timestamppb.Timestamp {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return timestamppb.New(v)
	}
	for _, tc := range []struct {
		query string
		want  *stagesv1.GetFunnelRequest
	}{
		{"", &stagesv1.GetFunnelRequest{}},
		{"?journeyId=plg&window.start=2026-01-01T00:00:00Z&window.end=2026-04-01T00:00:00Z&conversionWindowDays=14&plan=team",
			&stagesv1.GetFunnelRequest{JourneyId: "plg", Window: &commonv1.TimeWindow{Start: ts("2026-01-01T00:00:00Z"), End: ts("2026-04-01T00:00:00Z")},
				ConversionWindowDays: 14, Plan: "team"}},
		{"?breakdown=plan&trend=week", &stagesv1.GetFunnelRequest{Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_PLAN, Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK}},
		{"?accountsFigure=converted&accountsStage=onboarding&accountsBucket=3", &stagesv1.GetFunnelRequest{
			AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED, AccountsStage: "onboarding", AccountsBucket: 3}},
		{"?accounts_figure=overall_reached&conversion_window_days=30", &stagesv1.GetFunnelRequest{
			AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_REACHED, ConversionWindowDays: 30}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			w := e.do("GET", "/v1/funnel"+tc.query, "")
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			got := e.conn.lastRequest("/cairn.stages.v1.StagesService/GetFunnel").(*stagesv1.GetFunnelRequest)
			got.Workspace = ""
			if !proto.Equal(got, tc.want) {
				t.Errorf("upstream got %v, want %v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ query, field string }{
		{"?window.start=yesterday", "window.start"},
		{"?conversionWindowDays=two", "conversionWindowDays"},
		{"?trend=daily", "trend"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			checkErrorBody(t, e.do("GET", "/v1/funnel"+tc.query, ""), 400, codes.InvalidArgument, tc.field)
		})
	}
	if w := e.do("GET", "/v1/journeys", ""); w.Code != 200 || e.conn.lastRequest("/cairn.stages.v1.StagesService/ListJourneys") == nil {
		t.Errorf("GET /v1/journeys: status %d, upstream %v: %s", w.Code, e.conn.lastRequest("/cairn.stages.v1.StagesService/ListJourneys"), w.Body)
	}
}
