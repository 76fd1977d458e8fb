package app

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// TestStageIsTheDefaultJourneys holds routing's stage and previous_stage
// (what PQL rules read) to the account's stages in the workspace's default
// journey, with a second journey's stage changes interleaved (ADR 0023),
// and checks that applying the records one batch at a time (live) and all
// in one batch (a rebuild from offset 1) derive the same state.
func TestStageIsTheDefaultJourneys(t *testing.T) {
	at := ny(16, 10, 0)
	tr := func(j, from, to string) *stagesv1.LogRecord {
		return &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
			Workspace: "ws", AccountId: "acme", JourneyId: j, FromStage: from, ToStage: to, At: timestamppb.New(at), Cause: "event"}}}
	}
	activated := &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Signal{Signal: &commonv1.Signal{
		Workspace: "ws", AccountId: "acme", SignalId: "acme:activation_reached", Kind: commonv1.SignalKind_SIGNAL_KIND_STUCK,
		Reason: "activation_reached", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(at)}}}
	const selfServe = "self-serve"
	for _, tc := range []struct {
		name            string
		recs            []*stagesv1.LogRecord
		stage, previous string
		// pql is the assignments made: the example's activated-trial rule
		// reads stage == "trial", a stage id the second journey also has.
		pql string
	}{
		{
			name:  "second journey only: no stage",
			recs:  []*stagesv1.LogRecord{tr(selfServe, "", "trial"), activated},
			stage: "", previous: "", pql: "",
		},
		{
			name:  "default journey's trial fires the pql",
			recs:  []*stagesv1.LogRecord{tr(journey.Default, "", "trial"), activated},
			stage: "trial", previous: "", pql: "pql/acme/sam/known-account/open",
		},
		{
			name: "second journey's trial after the default's evaluation does not",
			recs: []*stagesv1.LogRecord{
				tr(journey.Default, "", "awareness"), tr(selfServe, "", "trial"), tr(journey.Default, "awareness", "evaluation"),
				tr(selfServe, "trial", "paid"), tr(selfServe, "paid", "trial"), activated,
			},
			stage: "evaluation", previous: "awareness", pql: "",
		},
		{
			name: "second journey's moves leave previous_stage the default's",
			recs: []*stagesv1.LogRecord{
				tr(journey.Default, "", "trial"), tr(selfServe, "", "habit"), tr(journey.Default, "trial", "onboarding"), tr(selfServe, "habit", "expanding"),
			},
			stage: "onboarding", previous: "trial", pql: "",
		},
		{
			name: "leaving the default journey empties the stage whatever the other says",
			recs: []*stagesv1.LogRecord{
				tr(journey.Default, "", "adoption"), tr(selfServe, "", "paid"), tr(journey.Default, "adoption", ""), tr(selfServe, "paid", "habit"),
			},
			stage: "", previous: "adoption", pql: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]store.Account
			for i, live := range []bool{true, false} {
				h := newHarness(t, "", at)
				h.applyExample()
				if live {
					for _, r := range tc.recs {
						h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyStages(tx, 0, []*stagesv1.LogRecord{r}) })
					}
				} else {
					h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyStages(tx, 0, tc.recs) })
				}
				if err := h.db.View(func(tx *pstore.Tx) error {
					a, err := store.In(tx, "ws").Account("acme")
					if err == nil {
						got[i] = *a
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if got[i].Stage != tc.stage || got[i].PreviousStage != tc.previous {
					t.Errorf("live=%v: stage %q, previous_stage %q; want %q, %q", live, got[i].Stage, got[i].PreviousStage, tc.stage, tc.previous)
				}
				if s := summary(h.list(&routingv1.ListAssignmentsRequest{})); s != tc.pql {
					t.Errorf("live=%v: assignments %q, want %q", live, s, tc.pql)
				}
				h.stop()
			}
			if got[0].Stage != got[1].Stage || got[0].PreviousStage != got[1].PreviousStage {
				t.Errorf("live %+v and rebuilt %+v differ", got[0], got[1])
			}
		})
	}
}
