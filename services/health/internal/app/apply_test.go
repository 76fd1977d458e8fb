package app_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/store"
	"github.com/cairn-dev/cairn/services/health/internal/store/storedump"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// boltLog is a hand-written fake of the health log that stores records in
// the same bbolt transaction, like pkg/stream's Log.
type boltLog struct{ parts uint32 }

func (l boltLog) Partitions() uint32 { return l.parts }

func (l boltLog) AppendTx(tx *kv.Tx, p uint32, data []byte) (uint64, error) {
	b, err := tx.Bucket("testlog", fmt.Sprint(p))
	if err != nil {
		return 0, err
	}
	off, _ := b.NextSequence()
	return off, b.Put(kv.U64(off), data)
}

func readLog(t *testing.T, db *kv.DB, parts uint32) []*healthv1.LogRecord {
	t.Helper()
	var out []*healthv1.LogRecord
	err := db.View(func(tx *kv.Tx) error {
		for p := uint32(0); p < parts; p++ {
			b, _ := tx.Bucket("testlog", fmt.Sprint(p))
			if b == nil {
				continue
			}
			if err := b.ForEach(func(_, v []byte) error {
				r := &healthv1.LogRecord{}
				if err := proto.Unmarshal(v, r); err != nil {
					return err
				}
				r.Partition = p
				out = append(out, r)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openDB(t *testing.T, path string) *kv.DB {
	t.Helper()
	db, err := kv.Open(path, kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newApp(t *testing.T, db *kv.DB, clk clock.Clock) *app.App {
	t.Helper()
	a, err := app.New(app.Options{DB: db, Log: boltLog{parts: 4}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func event(acct string, day int, typ ingestionv1.EventType, user, name string, kv ...any) *ingestionv1.LogRecord {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // fixtures only
	}
	ev := &ingestionv1.Event{Workspace: "w", AccountId: acct, Type: typ, UserId: user, Event: name,
		Timestamp: timestamppb.New(t0.Add(time.Duration(day)*24*time.Hour + 12*time.Hour))}
	if typ == ingestionv1.EventType_EVENT_TYPE_TRACK {
		ev.Properties = s
	} else {
		ev.Traits = s
	}
	return &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: ev}}
}

const (
	track = ingestionv1.EventType_EVENT_TYPE_TRACK
	grp   = ingestionv1.EventType_EVENT_TYPE_GROUP
	ident = ingestionv1.EventType_EVENT_TYPE_IDENTIFY
)

// history builds a deterministic multi-account event log: healthy and
// declining accounts with seats, tickets, NPS, a user deletion and an
// account deletion.
func history() []*ingestionv1.LogRecord {
	var out []*ingestionv1.LogRecord
	for day := 0; day < 90; day++ {
		for a := 0; a < 4; a++ {
			acct := fmt.Sprintf("acct-%d", a)
			if a == 1 && day >= 70 {
				continue // deleted on day 70
			}
			if day == 0 {
				out = append(out, event(acct, day, grp, "", "", "seats", 5, "arr", 1000*(a+1), "plan", "pro",
					"contract_end", t0.AddDate(0, 0, 150).Format(time.RFC3339)))
				out = append(out, event(acct, day, ident, "u0", "", "role", "champion", "email", "x@"+acct+".com"))
				out = append(out, event(acct, day, track, "", "billing.subscription_started", "plan", "pro"))
			}
			users := 4 - a
			if a == 3 && day > 45 {
				users = 1 // acct-3 declines
			}
			for u := 0; u < users; u++ {
				out = append(out, event(acct, day, track, fmt.Sprintf("u%d", u), vocab.Features()[(day+u)%5]))
			}
			if a == 2 && day == 20 {
				out = append(out, event(acct, day, track, "u1", "support.ticket_opened", "ticket_id", "T1", "priority", "p1"))
				out = append(out, event(acct, day, track, "u1", "survey.nps", "score", 3))
			}
			if a == 2 && day == 40 {
				out = append(out, event(acct, day, track, "u1", "support.ticket_closed", "ticket_id", "T1"))
			}
		}
		if day == 60 {
			out = append(out, &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "w", UserId: "u1"}}})
		}
		if day == 70 {
			out = append(out, &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "w", AccountId: "acct-1"}}})
		}
	}
	for i, r := range out {
		r.Offset = uint64(i + 1)
	}
	return out
}

func apply(t *testing.T, db *kv.DB, e *app.App, recs []*ingestionv1.LogRecord, batch int) {
	t.Helper()
	for i := 0; i < len(recs); i += batch {
		j := min(i+batch, len(recs))
		if err := db.Update(func(tx *kv.Tx) error { return e.ApplyIngestion(tx, 0, recs[i:j]) }); err != nil {
			t.Fatal(err)
		}
	}
}

// dumpState renders every bucket except the schema version, so two stores
// can be compared.
func dumpState(t *testing.T, db *kv.DB) string {
	t.Helper()
	return storedump.String(t, db, "_meta")
}

func TestApplyRestartMidStreamEqualsCleanRun(t *testing.T) {
	recs := history()
	clk := clock.NewManual(t0.AddDate(0, 0, 90))

	clean := openDB(t, filepath.Join(t.TempDir(), "clean.db"))
	defer clean.Close()
	apply(t, clean, newApp(t, clean, clk), recs, 7)

	path := filepath.Join(t.TempDir(), "restart.db")
	db := openDB(t, path)
	half := len(recs) / 2
	apply(t, db, newApp(t, db, clk), recs[:half], 5)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path)
	defer db.Close()
	apply(t, db, newApp(t, db, clk), recs[half:], 3)

	a, b := dumpState(t, clean), dumpState(t, db)
	if a != b {
		la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
		for i := range la {
			if i < len(lb) && la[i] != lb[i] {
				t.Logf("first difference:\n%s\n%s", la[i], lb[i])
				break
			}
		}
		t.Fatalf("restarted run differs from the clean run (%d vs %d bytes)", len(a), len(b))
	}
	if len(readLog(t, clean, 4)) == 0 {
		t.Fatal("no health log records")
	}
}

func TestIngestionScoresSignalsAndForgets(t *testing.T) {
	clk := clock.NewManual(t0.AddDate(0, 0, 90))
	db := openDB(t, filepath.Join(t.TempDir(), "h.db"))
	defer db.Close()
	reg := prometheus.NewRegistry()
	e, err := app.New(app.Options{DB: db, Log: boltLog{parts: 4}, Clock: clk, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, db, e, history(), 50)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if m.GetHistogram().GetSampleCount() > 0 || m.GetCounter().GetValue() > 0 {
				seen[f.GetName()] = true
			}
		}
	}
	if !seen["cairn_health_evaluation_seconds"] || !seen["cairn_health_signals_total"] {
		t.Errorf("metrics with samples: %v", seen)
	}

	var h0, h3 *healthv1.AccountHealth
	if err := db.View(func(tx *kv.Tx) error {
		var err error
		if h0, err = store.GetHealth(tx, "w", "acct-0"); err != nil {
			return err
		}
		if h3, err = store.GetHealth(tx, "w", "acct-3"); err != nil {
			return err
		}
		if _, err := store.GetHealth(tx, "w", "acct-1"); err == nil {
			t.Error("acct-1 was deleted by a tombstone but still has health")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if h0.GetScore() <= h3.GetScore() {
		t.Errorf("healthy acct-0 scored %v, declining acct-3 %v", h0.GetScore(), h3.GetScore())
	}
	if len(h0.GetComponents()) != 9 || h0.GetProfile() != "" {
		t.Errorf("acct-0: %d components, profile %q", len(h0.GetComponents()), h0.GetProfile())
	}
	sum := 0.0
	for _, c := range h0.GetComponents() {
		sum += c.GetContribution()
	}
	if d := sum - h0.GetScore(); d > 0.05 || d < -0.05 {
		t.Errorf("contributions sum to %v, score %v", sum, h0.GetScore())
	}
	open := map[string]bool{}
	for _, s := range h3.GetOpenSignals() {
		open[s.GetReason()] = true
	}
	if !open["single_active_user"] {
		t.Errorf("acct-3 open signals %v, want single_active_user", open)
	}
	if h3.GetDirection() == "" || h3.GetChanges() == nil {
		t.Errorf("acct-3: direction %q changes %v", h3.GetDirection(), h3.GetChanges())
	}

	var tomb, opened, closed int
	for _, r := range readLog(t, db, 4) {
		switch k := r.GetKind().(type) {
		case *healthv1.LogRecord_Tombstone:
			tomb++
		case *healthv1.LogRecord_Signal:
			if k.Signal.GetAccountId() == "acct-2" && k.Signal.GetReason() == "p1_ticket_aging" {
				if k.Signal.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN {
					opened++
				} else {
					closed++
				}
			}
		}
	}
	if tomb != 2 || opened != 1 || closed != 1 {
		t.Errorf("log: %d tombstones, p1 signal opened %d closed %d; want 2, 1, 1", tomb, opened, closed)
	}
}

func TestDailyTimerSurvivesRestartAndOpensRenewal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	clk := clock.NewManual(t0)
	db := openDB(t, path)
	e := newApp(t, db, clk)
	// Contract ends on day 125; the last event is on day 0, so only the
	// timer can notice the 120-day window opening on day 5.
	apply(t, db, e, []*ingestionv1.LogRecord{
		event("a", 0, grp, "", "", "seats", 5, "contract_end", t0.AddDate(0, 0, 125).Format(time.RFC3339)),
		event("a", 0, track, "u0", "billing.subscription_started", "plan", "pro"),
	}, 10)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, path)
	defer db.Close()
	e = newApp(t, db, clk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.RunTimers(ctx) }()

	for day := 1; day <= 6; day++ {
		waitFor(t, func() bool { return clk.Waiters() > 0 })
		clk.Set(t0.AddDate(0, 0, day))
	}
	waitFor(t, func() bool {
		var h *healthv1.AccountHealth
		_ = db.View(func(tx *kv.Tx) error { h, _ = store.GetHealth(tx, "w", "a"); return nil })
		for _, s := range h.GetOpenSignals() {
			if s.GetReason() == "renewal_window_120" {
				return true
			}
		}
		return false
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var snaps int
	_ = db.View(func(tx *kv.Tx) error {
		return store.ScanSnapshots(tx, "w", "a", "", func(*store.Snapshot) (bool, error) { snaps++; return true, nil })
	})
	if snaps < 6 {
		t.Errorf("%d daily snapshots, want one per day", snaps)
	}
}

// waitFor polls a condition that a background goroutine will make true; it
// does not wait on any deadline of the code under test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 5000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestStagesTransitionFeedsMeasures(t *testing.T) {
	clk := clock.NewManual(t0)
	db := openDB(t, filepath.Join(t.TempDir(), "h.db"))
	defer db.Close()
	e := newApp(t, db, clk)
	// A model scoring days in stage.
	m := &healthv1.Model{Id: "stage", Components: []*healthv1.Component{{
		Name: "in_stage", Measure: `stage == "adoption" ? days_in_stage : 0.0`, Weight: 100,
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
	tr := &stagesv1.LogRecord{Offset: 1, Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
		Workspace: "w", AccountId: "a", ToStage: "adoption", At: timestamppb.New(t0)}}}
	if err := db.Update(func(tx *kv.Tx) error { return e.ApplyStages(tx, 0, []*stagesv1.LogRecord{tr}) }); err != nil {
		t.Fatal(err)
	}
	apply(t, db, e, []*ingestionv1.LogRecord{event("a", 5, track, "u", "billing.subscription_started", "plan", "pro")}, 1)
	var h *healthv1.AccountHealth
	_ = db.View(func(tx *kv.Tx) error { h, _ = store.GetHealth(tx, "w", "a"); return nil })
	// Day 5 at noon: 5.5 days in stage -> 55 points.
	if h.GetScore() != 55 || h.GetStage() != "adoption" || h.GetModelId() != "stage" {
		t.Fatalf("got score %v stage %q model %q", h.GetScore(), h.GetStage(), h.GetModelId())
	}
	// Stages takes an account out of its journey (a churn) with an empty
	// to_stage: health must then say it is in no stage, as stages does.
	out := &stagesv1.LogRecord{Offset: 2, Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
		Workspace: "w", AccountId: "a", FromStage: "adoption", Cause: "churn", At: timestamppb.New(t0.Add(6 * 24 * time.Hour))}}}
	if err := db.Update(func(tx *kv.Tx) error { return e.ApplyStages(tx, 0, []*stagesv1.LogRecord{out}) }); err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *kv.Tx) error { h, _ = store.GetHealth(tx, "w", "a"); return nil })
	if h.GetStage() != "" {
		t.Fatalf("after leaving the journey: stage %q, want none", h.GetStage())
	}
}
