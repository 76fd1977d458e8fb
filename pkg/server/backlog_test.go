package server

import (
	"reflect"
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

func TestSumBacklogs(t *testing.T) {
	names := []string{"stages", "health", "routing"}
	caught := &commonv1.Backlog{CaughtUp: true}
	// lag is one consumer's position on one upstream log partition.
	lag := func(source string, partition uint32, cursor, head uint64) *commonv1.ConsumerLag {
		return &commonv1.ConsumerLag{Source: source, Partition: partition, Cursor: cursor, Head: head, Lag: head - cursor, HeadKnown: true}
	}
	backlog := func(consumers ...*commonv1.ConsumerLag) *commonv1.Backlog {
		b := &commonv1.Backlog{Consumers: consumers, CaughtUp: true}
		for _, c := range consumers {
			b.Lag += c.GetLag()
			b.CaughtUp = b.CaughtUp && c.GetLag() == 0
		}
		return b
	}
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
			// Stages, health and routing all have ingestion's events 901 to
			// 1000 of partition 0 still to read: 100 events, not 300.
			name: "one event read by three services counts once",
			backlogs: []*commonv1.Backlog{
				backlog(lag("ingestion", 0, 900, 1000)),
				backlog(lag("ingestion", 0, 900, 1000)),
				backlog(lag("ingestion", 0, 900, 1000)),
			},
			want: Processing{Behind: 100, Events: 100, Services: []ServiceBacklog{
				{Service: "stages", Behind: 100}, {Service: "health", Behind: 100}, {Service: "routing", Behind: 100},
			}},
		},
		{
			// The slowest consumer of a partition decides what is behind,
			// up to the newest head heard; partitions and logs add up.
			name: "slowest cursor to newest head, per log and partition",
			backlogs: []*commonv1.Backlog{
				backlog(lag("ingestion", 0, 990, 1000), lag("ingestion", 1, 500, 500)),
				backlog(lag("ingestion", 0, 950, 1000), lag("ingestion", 1, 480, 500), lag("stages", 0, 70, 75)),
				backlog(lag("ingestion", 0, 1000, 1000), lag("ingestion", 1, 490, 505), lag("stages", 0, 75, 75), lag("health", 0, 10, 12)),
			},
			want: Processing{Behind: 50 + 25 + 5 + 2, Events: 50 + 25, Updates: 5 + 2, Services: []ServiceBacklog{
				{Service: "stages", Behind: 10}, {Service: "health", Behind: 50 + 20 + 5}, {Service: "routing", Behind: 15 + 2},
			}},
		},
		{
			// Each ingestion replica has its own log: their records are
			// different events.
			name: "ingestion replicas are different logs",
			backlogs: []*commonv1.Backlog{
				backlog(lag("ingestion", 0, 0, 10), lag("ingestion-1", 0, 0, 7)),
				backlog(lag("ingestion-1", 0, 3, 7), lag("ingestion-x", 0, 0, 4)),
				caught,
			},
			want: Processing{Behind: 21, Events: 17, Updates: 4, Services: []ServiceBacklog{
				{Service: "stages", Behind: 17}, {Service: "health", Behind: 8}, {Service: "routing", CaughtUp: true},
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

func TestIsEvents(t *testing.T) {
	for source, want := range map[string]bool{"ingestion": true, "ingestion-1": true, "ingestion-12": true, "ingestion-": false, "ingestion-x": false, "ingestionx": false, "stages": false, "stages-1": false, "": false} {
		if got := isEvents(source); got != want {
			t.Errorf("isEvents(%q) = %v, want %v", source, got, want)
		}
	}
}
