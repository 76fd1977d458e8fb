package app_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// TestStageIsTheDefaultJourneys holds health's stage (the account pages,
// the list and the model's stage and days_in_stage) to the account's stage
// in the workspace's default journey, with a second journey's stage changes
// interleaved (ADR 0023). The store built with them, record by record
// (live) or in one batch (a rebuild from offset 1), equals the store built
// from the default journey's records alone.
func TestStageIsTheDefaultJourneys(t *testing.T) {
	day := func(d int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(d) * 24 * time.Hour)) }
	tr := func(j, from, to string, d int) *stagesv1.LogRecord {
		cause := "event"
		if to == "" {
			cause = "churn"
		}
		return &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
			Workspace: "w", AccountId: "a", JourneyId: j, FromStage: from, ToStage: to, Cause: cause, At: day(d)}}}
	}
	const selfServe = "self-serve"
	for _, tc := range []struct {
		name  string
		recs  []*stagesv1.LogRecord
		stage string
		// entered is the day the account entered stage.
		entered int
	}{
		{"default journey only", []*stagesv1.LogRecord{tr(journey.Default, "", "onboarding", 1), tr(journey.Default, "onboarding", "adoption", 2)}, "adoption", 2},
		{"second journey only: no stage", []*stagesv1.LogRecord{tr(selfServe, "", "trial", 1), tr(selfServe, "trial", "habit", 2)}, "", 0},
		{"second journey's moves after the default's", []*stagesv1.LogRecord{
			tr(journey.Default, "", "adoption", 1), tr(selfServe, "", "trial", 1), tr(selfServe, "trial", "paid", 2), tr(selfServe, "paid", "expanding", 3),
		}, "adoption", 1},
		{"interleaved both ways", []*stagesv1.LogRecord{
			tr(selfServe, "", "trial", 1), tr(journey.Default, "", "onboarding", 1), tr(selfServe, "trial", "paid", 2),
			tr(journey.Default, "onboarding", "adoption", 3), tr(selfServe, "paid", "habit", 4),
		}, "adoption", 3},
		{"second journey's churn leaves the default's stage", []*stagesv1.LogRecord{
			tr(journey.Default, "", "adoption", 1), tr(selfServe, "", "paid", 2), tr(selfServe, "paid", "", 3),
		}, "adoption", 1},
		{"default journey's churn empties the stage", []*stagesv1.LogRecord{
			tr(journey.Default, "", "adoption", 1), tr(selfServe, "", "paid", 2), tr(journey.Default, "adoption", "", 3), tr(selfServe, "paid", "habit", 4),
		}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var defaultOnly []*stagesv1.LogRecord
			for _, r := range tc.recs {
				if journey.IsDefault(r.GetTransition()) {
					defaultOnly = append(defaultOnly, r)
				}
			}
			build := func(name string, recs []*stagesv1.LogRecord, batch int) (string, *healthv1.AccountHealth) {
				db := openDB(t, filepath.Join(t.TempDir(), name+".db"))
				defer db.Close()
				e := newApp(t, db, clock.NewManual(t0.AddDate(0, 0, 10)))
				useStageModel(t, db)
				apply(t, db, e, []*ingestionv1.LogRecord{event("a", 0, track, "u", "billing.subscription_started", "plan", "pro")}, 1)
				for i := 0; i < len(recs); i += batch {
					j := min(i+batch, len(recs))
					if err := db.Update(func(tx *kv.Tx) error { return e.ApplyStages(tx, 0, recs[i:j]) }); err != nil {
						t.Fatal(err)
					}
				}
				apply(t, db, e, []*ingestionv1.LogRecord{event("a", 5, track, "u", vocab0)}, 1)
				var h *healthv1.AccountHealth
				if err := db.View(func(tx *kv.Tx) error {
					var err error
					h, err = store.GetHealth(tx, "w", "a")
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return dumpState(t, db), h
			}
			want, wantH := build("default-only", defaultOnly, 1)
			if wantH.GetStage() != tc.stage {
				t.Fatalf("default journey's records alone: stage %q, want %q", wantH.GetStage(), tc.stage)
			}
			for _, b := range []struct {
				name  string
				batch int
			}{{"live", 1}, {"rebuild", len(tc.recs)}} {
				got, h := build(b.name, tc.recs, b.batch)
				if h.GetStage() != tc.stage {
					t.Errorf("%s: stage %q, want %q", b.name, h.GetStage(), tc.stage)
				}
				if tc.stage != "" {
					// Day 5 at noon, in the stage since day tc.entered at 0:00.
					days := 5.5 - float64(tc.entered)
					if w := fmt.Sprintf("%.1f", 10*days); fmt.Sprintf("%.1f", h.GetScore()) != w {
						t.Errorf("%s: score %v, want %s (days in stage from the default journey)", b.name, h.GetScore(), w)
					}
				}
				if got != want {
					t.Errorf("%s: the store differs from the one built from the default journey's records alone:\n%s\nwant\n%s", b.name, got, want)
				}
			}
		})
	}
}

// vocab0 is a product event with no meaning to the stage model, to score
// the account on day 5.
const vocab0 = "page_viewed"

// useStageModel activates a model whose only component is the days spent
// in the stage (any stage), 10 points a day up to 10 days.
func useStageModel(t *testing.T, db *kv.DB) {
	t.Helper()
	m := &healthv1.Model{Id: "stage", Components: []*healthv1.Component{{
		Name: "in_stage", Measure: `stage != "" ? days_in_stage : 0.0`, Weight: 100,
		Linear: &healthv1.LinearRange{From: 0, To: 10},
	}}}
	if err := db.Update(func(tx *kv.Tx) error {
		if err := store.PutModel(tx, "w", m); err != nil {
			return err
		}
		return store.SetActive(tx, "w", m.GetId(), m.GetVersion())
	}); err != nil {
		t.Fatal(err)
	}
}
