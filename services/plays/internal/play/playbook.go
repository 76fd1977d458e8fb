package play

import (
	"slices"
	"time"
)

// Built-in playbook ids: available to every plays file, never redefined.
const (
	// PlaybookRenewal runs from renewal signals (health's
	// renewal_window_<days>); its steps depend on the window and the band.
	PlaybookRenewal = "renewal"
	// PlaybookOnboarding runs from entering the onboarding stage.
	PlaybookOnboarding = "onboarding"
)

// Playbook is a compiled playbook: steps that fall due relative to an
// anchor (the time of the record that started the run).
type Playbook struct {
	ID   string
	Name string
	// Builtin is true for renewal and onboarding.
	Builtin bool
	// Steps in the order defined.
	Steps []Step
}

// Step is one task of a playbook.
type Step struct {
	// Offset is when the step falls due relative to the anchor; negative
	// offsets (before a date such as the contract end) fall due at once when
	// the anchor is already that close.
	Offset time.Duration
	// Window, when not 0, limits the step to runs whose anchor is that
	// renewal window (days before contract end).
	Window int
	Title  string
	Owner  Owner
	// Due is how long the owner has once the step falls due; 0 means no
	// due date. The app counts it in business time.
	Due time.Duration
	// Bands, when set, limits the step to accounts in one of these bands.
	Bands []string
	// SkipIf is CEL over account; the step is skipped when it holds at the
	// time the step falls due (Set.Skip).
	SkipIf string
	skip   *program
}

// Anchor is what a playbook run is anchored on.
type Anchor struct {
	// WindowDays is the renewal window of the signal that started the run
	// (its window_days attribute), 0 when none.
	WindowDays int
	// Band is the account's band when the run started. A band other than
	// healthy, neutral or at_risk ("" before the first score) follows the
	// neutral path.
	Band string
}

// StepsFor returns the steps of a run with this anchor, in order: those
// without a window or with the anchor's window, and without bands or with
// the anchor's band.
func (pb *Playbook) StepsFor(a Anchor) []Step {
	band := a.Band
	if !isBand(band) {
		band = BandNeutral
	}
	var out []Step
	for _, s := range pb.Steps {
		if s.Window != 0 && s.Window != a.WindowDays {
			continue
		}
		if len(s.Bands) > 0 && !slices.Contains(s.Bands, band) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Windows returns the distinct renewal windows the playbook's steps name,
// largest first.
func (pb *Playbook) Windows() []int {
	var out []int
	for _, s := range pb.Steps {
		if s.Window != 0 && !slices.Contains(out, s.Window) {
			out = append(out, s.Window)
		}
	}
	slices.SortFunc(out, func(a, b int) int { return b - a })
	return out
}

// Business-day due dates of the renewal playbook: at-risk accounts get two
// business days, the others five.
const (
	renewalDue       = "5d"
	renewalDueAtRisk = "2d"
)

// BuiltinDefs returns the built-in playbooks as written, a fresh copy each
// call. This is the table the renewal and onboarding plays follow:
//
// renewal, by window (days before contract end) and band:
//
//	window  at_risk (due 2d)                                   neutral (due 5d)                       healthy (due 5d)
//	120     Review account plan and renewal risk (csm)         Review account plan … (csm)            —
//	        Executive sponsor call (csm)
//	90      Renewal kickoff with champion (csm)                Renewal kickoff with champion (csm)    —
//	        Executive sponsor call (csm)
//	60      Send renewal proposal (ae)                         Send renewal proposal (ae)             Confirm auto-renewal (csm)
//	30      Confirm signature path / escalate (ae)             Confirm signature path / escalate (ae) —
//
// Healthy accounts take the automated path: no calls, one task to confirm
// the auto-renewal at 60 days.
//
// onboarding, anchored on entering the onboarding stage, each step skipped
// when the account has left onboarding by the time it falls due:
//
//	+7d   No first login in 7 days: call the champion (csm, due 2d)
//	+45d  No first value in 45 days: run an adoption workshop (csm, due 5d)
func BuiltinDefs() []PlaybookDef {
	atRisk, neutral, healthy := []string{BandAtRisk}, []string{BandNeutral}, []string{BandHealthy}
	stillOnboarding := `account.stage != "onboarding"`
	return []PlaybookDef{
		{ID: PlaybookRenewal, Name: "Renewal", Steps: []StepDef{
			{Window: 120, Title: "Review account plan and renewal risk", Owner: RoleCSM, Due: renewalDueAtRisk, Bands: atRisk},
			{Window: 120, Title: "Executive sponsor call", Owner: RoleCSM, Due: renewalDueAtRisk, Bands: atRisk},
			{Window: 120, Title: "Review account plan and renewal risk", Owner: RoleCSM, Due: renewalDue, Bands: neutral},

			{Window: 90, Title: "Renewal kickoff with champion", Owner: RoleCSM, Due: renewalDueAtRisk, Bands: atRisk},
			{Window: 90, Title: "Executive sponsor call", Owner: RoleCSM, Due: renewalDueAtRisk, Bands: atRisk},
			{Window: 90, Title: "Renewal kickoff with champion", Owner: RoleCSM, Due: renewalDue, Bands: neutral},

			{Window: 60, Title: "Send renewal proposal", Owner: RoleAE, Due: renewalDueAtRisk, Bands: atRisk},
			{Window: 60, Title: "Send renewal proposal", Owner: RoleAE, Due: renewalDue, Bands: neutral},
			{Window: 60, Title: "Confirm auto-renewal", Owner: RoleCSM, Due: renewalDue, Bands: healthy},

			{Window: 30, Title: "Confirm signature path / escalate", Owner: RoleAE, Due: renewalDueAtRisk, Bands: atRisk},
			{Window: 30, Title: "Confirm signature path / escalate", Owner: RoleAE, Due: renewalDue, Bands: neutral},
		}},
		{ID: PlaybookOnboarding, Name: "Onboarding", Steps: []StepDef{
			{Offset: "7d", Title: "No first login in 7 days: call the champion", Owner: RoleCSM, Due: "2d", SkipIf: stillOnboarding},
			{Offset: "45d", Title: "No first value in 45 days: run an adoption workshop", Owner: RoleCSM, Due: "5d", SkipIf: stillOnboarding},
		}},
	}
}

func isBuiltin(id string) bool { return id == PlaybookRenewal || id == PlaybookOnboarding }
