package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

func TestFunnelRequest(t *testing.T) {
	day := func(s string) *timestamppb.Timestamp {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return timestamppb.New(d)
	}
	for _, tt := range []struct {
		name    string
		flags   funnelFlags
		want    *stagesv1.GetFunnelRequest
		wantErr string
	}{
		{name: "nothing set", want: &stagesv1.GetFunnelRequest{Workspace: "ws"}},
		{
			name:  "every selection",
			flags: funnelFlags{journey: "b2b", cohort: "2026-03", segment: "smb", plan: "pro", from: "2026-01-01", to: "2026-03-31", conversionWindow: 14, by: "plan", trend: "week"},
			want: &stagesv1.GetFunnelRequest{Workspace: "ws", JourneyId: "b2b", Cohort: "2026-03", Segment: "smb", Plan: "pro",
				// --to is included: the window ends at the start of the next day.
				Window:               &commonv1.TimeWindow{Start: day("2026-01-01"), End: day("2026-04-01")},
				ConversionWindowDays: 14, Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_PLAN, Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK},
		},
		{name: "from only", flags: funnelFlags{from: "2026-05-02"}, want: &stagesv1.GetFunnelRequest{Workspace: "ws", Window: &commonv1.TimeWindow{Start: day("2026-05-02")}}},
		{name: "to only", flags: funnelFlags{to: "2026-05-02", by: "cohort", trend: "month"}, want: &stagesv1.GetFunnelRequest{Workspace: "ws", Window: &commonv1.TimeWindow{End: day("2026-05-03")},
			Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_COHORT, Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_MONTH}},
		{name: "a day that is not one", flags: funnelFlags{from: "2026-02-30"}, wantErr: `--from: "2026-02-30" is not a day (YYYY-MM-DD)`},
		{name: "a month is not a day", flags: funnelFlags{to: "2026-02"}, wantErr: `--to: "2026-02" is not a day (YYYY-MM-DD)`},
		{name: "to before from", flags: funnelFlags{from: "2026-03-01", to: "2026-02-01"}, wantErr: "--to 2026-02-01 is before --from 2026-03-01"},
		{name: "negative window", flags: funnelFlags{conversionWindow: -1}, wantErr: "--conversion-window: -1 is not a number of days from 0 to 3650"},
		{name: "window too long", flags: funnelFlags{conversionWindow: 3651}, wantErr: "--conversion-window: 3651 is not a number of days from 0 to 3650"},
		{name: "unknown breakdown", flags: funnelFlags{by: "region"}, wantErr: `--by must be segment, cohort or plan, not "region"`},
		{name: "unknown trend", flags: funnelFlags{trend: "day"}, wantErr: `--trend must be month or week, not "day"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.flags.request("ws")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("request = %v\nwant %v", got, tt.want)
			}
		})
	}
}
