package dashboard

import (
	"reflect"
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

func TestSumBacklogs(t *testing.T) {
	names := []string{"stages", "health", "routing"}
	caught := &commonv1.Backlog{CaughtUp: true}
	for _, tc := range []struct {
		name     string
		backlogs []*commonv1.Backlog
		want     Processing
	}{
		{
			name:     "all caught up",
			backlogs: []*commonv1.Backlog{caught, caught, caught},
			want: Processing{CaughtUp: true, Services: []ServiceBacklog{
				{Service: "stages", CaughtUp: true}, {Service: "health", CaughtUp: true}, {Service: "routing", CaughtUp: true},
			}},
		},
		{
			name:     "lags added up",
			backlogs: []*commonv1.Backlog{{Lag: 40000}, {Lag: 2500}, caught},
			want: Processing{Behind: 42500, Services: []ServiceBacklog{
				{Service: "stages", Behind: 40000}, {Service: "health", Behind: 2500}, {Service: "routing", CaughtUp: true},
			}},
		},
		{
			// Ready but not yet told an upstream head: nothing known to be
			// behind, and not caught up either.
			name:     "head not heard",
			backlogs: []*commonv1.Backlog{caught, {}, caught},
			want: Processing{Services: []ServiceBacklog{
				{Service: "stages", CaughtUp: true}, {Service: "health"}, {Service: "routing", CaughtUp: true},
			}},
		},
		{
			name:     "no backlog is not caught up",
			backlogs: []*commonv1.Backlog{caught, caught, nil},
			want: Processing{Services: []ServiceBacklog{
				{Service: "stages", CaughtUp: true}, {Service: "health", CaughtUp: true}, {Service: "routing"},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SumBacklogs(names, tc.backlogs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SumBacklogs = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
