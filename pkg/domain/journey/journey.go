// Package journey says which journey's stage changes a consumer of the
// stages log follows. A workspace may have several active journeys, and
// stages logs every journey's stage changes; "the account's stage" that
// health scores, routing's rules read and plays' account.stage carries is
// the stage in the workspace's default journey, and a stage trigger of a
// play that names no journey means that journey too (ADR 0023). The rule is
// written here once so that the three consumers cannot read one stage
// change three ways.
package journey

import stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"

// Default is the id of the workspace's default journey when it has one
// by that name: the one stages applies from its template when a
// workspace's first event arrives. Without it, stages' default is the
// active journey ListJourneys lists first; each transition says which it
// was (default_journey).
const Default = "default"

// IsDefault reports whether t is a stage change of the workspace's default
// journey, the one "the account's stage" is read from: stages marks such
// records (default_journey). Records logged before the mark existed count
// when their journey id is "default" or empty.
func IsDefault(t *stagesv1.Transition) bool {
	return t.GetDefaultJourney() || isDefaultID(t.GetJourneyId())
}

// In reports whether t is a stage change of journey id, where "" names the
// default journey: a play with no journey follows the default one.
func In(id string, t *stagesv1.Transition) bool {
	if id == "" || id == Default {
		return IsDefault(t)
	}
	return t.GetJourneyId() == id
}

func isDefaultID(id string) bool { return id == Default || id == "" }
