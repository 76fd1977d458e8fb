package app

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// journeysFile has plays on stage changes of the default journey (no
// journey named) and of a second one, on the account's status, and
// conditions over account.stage (the default journey's) and
// account.stages (every journey's).
const journeysFile = `plays:
  - id: default-trial
    on: [stage.entered]
    when: record.to_stage == "trial"
    actions:
      - task: {title: default trial, owner: csm}
  - id: self-serve-trial
    on: [stage.entered]
    journey: self-serve
    when: record.to_stage == "trial"
    actions:
      - task: {title: self-serve trial, owner: csm}
  - id: left-default
    on: [stage.exited]
    journey: default
    actions:
      - task: {title: left a default stage, owner: csm}
  - id: paid-while-adopting
    on: [stage.entered]
    journey: self-serve
    when: record.to_stage == "paid"
    conditions: account.stage == "adoption" && account.journey == "default"
    actions:
      - task: {title: paid while adopting, owner: csm}
  - id: adopting-after-paid
    on: [stage.entered]
    when: record.to_stage == "adoption"
    conditions: '"self-serve" in account.stages && account.stages["self-serve"] == "paid"'
    actions:
      - task: {title: adopting after paid, owner: csm}
  - id: churned
    on: [status.churned]
    actions:
      - task: {title: churned, owner: csm}
  - id: won-back
    on: [status.won_back]
    actions:
      - task: {title: won back, owner: csm}
`

// TestPlaysFollowTheirJourney: a play's stage triggers match the stage
// changes of its journey, the default one when it names none; account.stage
// is the default journey's whatever the other journeys do; a churn or
// win-back every journey logs fires the status plays once (ADR 0023).
// Applying the records one transaction each (live) or all in one (a
// rebuild from offset 1) gives the same tasks and account.
func TestPlaysFollowTheirJourney(t *testing.T) {
	const ss = "self-serve"
	type step struct{ j, from, to, cause string }
	def := func(from, to string) step { return step{journey.Default, from, to, "event"} }
	self := func(from, to string) step { return step{ss, from, to, "event"} }
	for _, tc := range []struct {
		name  string
		steps []step
		tasks []string
		// stage and journey are account.stage and account.journey after.
		stage, journeyID string
		stages           map[string]string
	}{
		{
			name:  "default journey's trial fires the play without a journey",
			steps: []step{def("", "trial")},
			tasks: []string{"default trial"}, stage: "trial", journeyID: journey.Default,
			stages: map[string]string{journey.Default: "trial"},
		},
		{
			name:  "second journey's trial fires only the play naming it",
			steps: []step{self("", "trial")},
			tasks: []string{"self-serve trial"}, stage: "", journeyID: "",
			stages: map[string]string{ss: "trial"},
		},
		{
			name:  "second journey's exits do not fire the default journey's exit play",
			steps: []step{def("", "evaluation"), self("", "trial"), self("trial", "paid"), self("paid", "habit")},
			tasks: []string{"self-serve trial"}, stage: "evaluation", journeyID: journey.Default,
			stages: map[string]string{journey.Default: "evaluation", ss: "habit"},
		},
		{
			name:  "account.stage stays the default journey's while the other moves",
			steps: []step{def("", "evaluation"), def("evaluation", "adoption"), self("", "trial"), self("trial", "paid")},
			tasks: []string{"left a default stage", "paid while adopting", "self-serve trial"}, stage: "adoption", journeyID: journey.Default,
			stages: map[string]string{journey.Default: "adoption", ss: "paid"},
		},
		{
			name:  "account.stages reads the other journey",
			steps: []step{self("", "trial"), self("trial", "paid"), def("", "adoption")},
			tasks: []string{"adopting after paid", "self-serve trial"}, stage: "adoption", journeyID: journey.Default,
			stages: map[string]string{journey.Default: "adoption", ss: "paid"},
		},
		{
			name: "a churn and win-back in both journeys fire the status plays once",
			steps: []step{
				def("", "adoption"), self("", "paid"),
				{journey.Default, "adoption", "", "churn"}, {ss, "paid", "", "churn"},
				{journey.Default, "", "adoption", "win_back"}, {ss, "", "paid", "win_back"},
			},
			// The churn's stage.exited does not fire: a churned account
			// fires only the status plays. Each placement in paid while in
			// adoption fires paid-while-adopting.
			tasks: []string{"churned", "paid while adopting", "paid while adopting", "won back"}, stage: "adoption", journeyID: journey.Default,
			stages: map[string]string{journey.Default: "adoption", ss: "paid"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]string
			for i, live := range []bool{true, false} {
				e := newEnv(t, nil)
				e.apply(journeysFile)
				t0 := e.clk.Now()
				var recs []*stagesv1.LogRecord
				for n, s := range tc.steps {
					recs = append(recs, transitionIn(s.j, "acme", s.from, s.to, s.cause, t0.Add(time.Duration(n)*time.Hour)))
				}
				if live {
					for _, r := range recs {
						e.stages(r)
					}
				} else {
					e.stages(recs...)
				}
				var tasks []string
				for _, k := range e.tasks("acme") {
					tasks = append(tasks, k.GetTitle())
				}
				slices.Sort(tasks)
				if !slices.Equal(tasks, tc.tasks) {
					t.Errorf("live=%v: tasks %q, want %q", live, tasks, tc.tasks)
				}
				var a *store.Account
				if err := e.db.View(func(tx *pstore.Tx) error {
					var err error
					a, err = store.In(tx, ws).Account("acme")
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if a.Stage != tc.stage || a.Journey != tc.journeyID || !maps.Equal(a.Stages, tc.stages) {
					t.Errorf("live=%v: account stage %q journey %q stages %v; want %q %q %v", live, a.Stage, a.Journey, a.Stages, tc.stage, tc.journeyID, tc.stages)
				}
				got[i] = fmt.Sprintf("%s|%s|%s|%v|%s|%s", strings.Join(tasks, ","), a.Stage, a.Journey, a.Stages, a.Status, firingsOf(e, "acme"))
			}
			if got[0] != got[1] {
				t.Errorf("live and rebuilt differ:\n%s\n%s", got[0], got[1])
			}
		})
	}
}

// firingsOf lists an account's firings as play/trigger, sorted.
func firingsOf(e *env, account string) string {
	var out []string
	for _, f := range e.firings(account) {
		out = append(out, f.GetPlayId()+"/"+f.GetTrigger())
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// TestJourneyField: a play's journey is an id, and only for plays on stage
// changes; the error names the field.
func TestJourneyField(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name, play, want string
	}{
		{"not an id", "    on: [stage.entered]\n    journey: Self Serve\n", "plays[0].journey: must be an id"},
		{"no stage trigger", "    on: [status.churned]\n    journey: self-serve\n", "plays[0].journey: selects the stage changes of stage.entered and stage.exited; on lists neither"},
	} {
		yaml := "plays:\n  - id: p\n" + tc.play + "    actions:\n      - task: {title: t, owner: csm}\n"
		_, _, err := e.svc.ApplyPlays(context.Background(), ws, yaml, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	ok := "plays:\n  - id: p\n    on: [stage.exited, status.churned]\n    journey: self-serve\n    actions:\n      - task: {title: t, owner: csm}\n"
	if _, _, err := e.svc.ApplyPlays(context.Background(), ws, ok, false); err != nil {
		t.Errorf("a journey on a play with a stage trigger: %v", err)
	}
}
