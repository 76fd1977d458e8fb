package app

import (
	"maps"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// TestTransitionsMarkTheDefaultJourney: each logged transition says whether
// its journey is the workspace's default, so that health, routing and
// plays follow one journey (ADR 0023) also where it is not named
// "default".
func TestTransitionsMarkTheDefaultJourney(t *testing.T) {
	for _, tc := range []struct {
		name    string
		install []string // journeys (the five-stage template under these ids) active before the first event
		want    map[string]bool
	}{
		{"default installed by the first event", nil, map[string]bool{"default": true}},
		{"one journey, not named default", []string{"b2b"}, map[string]bool{"b2b": true}},
		{"default and a second journey", []string{"default", "b2b"}, map[string]bool{"default": true, "b2b": false}},
		{"two journeys, neither named default: the one listed first", []string{"b2b", "a-plg"}, map[string]bool{"a-plg": false, "b2b": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, storetest.Open(t), clock.NewManual(start))
			for _, id := range tc.install {
				def, err := journey.Template("five-stage")
				if err != nil {
					t.Fatal(err)
				}
				def = proto.Clone(def).(*stagesv1.JourneyDefinition)
				def.Id, def.Version = id, 1
				if err := r.db.Update(func(tx *pstore.Tx) error {
					if err := store.PutDefinition(tx, "w", def); err != nil {
						return err
					}
					return store.SetActive(tx, "w", id, 1)
				}); err != nil {
					t.Fatal(err)
				}
			}
			r.apply(onboardingEvents()...)
			got := map[string]bool{}
			for p := uint32(0); p < partitions; p++ {
				recs, err := r.log.Read(p, 1, 1000)
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range recs {
					var lr stagesv1.LogRecord
					if err := proto.Unmarshal(rec.Data, &lr); err != nil {
						t.Fatal(err)
					}
					if tr := lr.GetTransition(); tr != nil {
						if prev, seen := got[tr.GetJourneyId()]; seen && prev != tr.GetDefaultJourney() {
							t.Errorf("journey %s marked both ways", tr.GetJourneyId())
						}
						got[tr.GetJourneyId()] = tr.GetDefaultJourney()
					}
				}
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("default_journey by journey = %v, want %v (journeys with transitions: %v)", got, tc.want, slices.Sorted(maps.Keys(got)))
			}
		})
	}
}
