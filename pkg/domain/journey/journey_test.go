package journey_test

import (
	"testing"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
)

func TestIsDefaultAndIn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		journey string // the record's journey_id
		marked  bool   // the record's default_journey
		follow  string // the journey a consumer or play follows; "" = default
		isDef   bool
		in      bool
	}{
		{"default journey, followed by default", journey.Default, false, "", true, true},
		{"default journey, named explicitly", journey.Default, false, journey.Default, true, true},
		{"record without journey id", "", false, "", true, true},
		{"record without journey id, named default", "", false, journey.Default, true, true},
		{"second journey, followed by default", "self-serve", false, "", false, false},
		{"second journey, named", "self-serve", false, "self-serve", false, true},
		{"default journey, play names another", journey.Default, false, "self-serve", true, false},
		{"record without journey id, play names another", "", false, "self-serve", true, false},
		{"ids are exact", "Default", false, "", false, false},
		{"only journey b2b, marked default by stages", "b2b", true, "", true, true},
		{"only journey b2b, marked, named", "b2b", true, "b2b", true, true},
		{"b2b unmarked (logged before the mark, or not the default)", "b2b", false, "", false, false},
	} {
		tr := &stagesv1.Transition{JourneyId: tc.journey, DefaultJourney: tc.marked}
		if got := journey.IsDefault(tr); got != tc.isDef {
			t.Errorf("%s: IsDefault = %v, want %v", tc.name, got, tc.isDef)
		}
		if got := journey.In(tc.follow, tr); got != tc.in {
			t.Errorf("%s: In(%q) = %v, want %v", tc.name, tc.follow, got, tc.in)
		}
	}
}
