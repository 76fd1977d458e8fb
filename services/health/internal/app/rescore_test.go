package app_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// seedRescore fills db with the accounts of history() (real events,
// tickets, champions, deletions) plus n varied synthetic accounts.
func seedRescore(t *testing.T, db *kv.DB, clk *clock.Manual, n int) {
	t.Helper()
	apply(t, db, newApp(t, db, clk), history(), 50)
	if err := db.Update(func(tx *kv.Tx) error {
		for i := 0; i < n; i++ {
			a := synthetic("w", i, clk.Now().AddDate(0, 0, -(i%5)))
			if i%3 == 0 {
				a.Stage, a.EnteredAt = "adoption", clk.Now().AddDate(0, 0, -(i%40))
			}
			if i%10 == 0 {
				a.Agg.CreatedAt = clk.Now().AddDate(0, 0, -(i % 25)).Unix() // onboarding profile
			}
			if i%7 == 0 {
				a.LastEval = clk.Now().Add(36 * time.Hour) // evaluated ahead of the clock
			}
			if err := store.PutAccount(tx, a, true); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// activateOther stores and activates the default model with other weights
// and thresholds, so a rescore under it moves most scores.
func activateOther(t *testing.T, db *kv.DB) {
	t.Helper()
	m, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	c := m.GetComponents()
	c[0].Weight, c[1].Weight = c[1].GetWeight()+5, c[0].GetWeight()-5
	c[2].Thresholds[1].Min = 2
	c[3].Thresholds = append(c[3].GetThresholds()[:1], &healthv1.Threshold{Min: 3, Points: 100})
	if err := db.Update(func(tx *kv.Tx) error {
		if err := store.PutModel(tx, "w", m); err != nil {
			return err
		}
		return store.SetActive(tx, "w", m.GetId(), m.GetVersion())
	}); err != nil {
		t.Fatal(err)
	}
}

// evaluateEach is the reference for Rescore: every account evaluated
// through the incremental path, a few per transaction.
func evaluateEach(t *testing.T, db *kv.DB, e *app.App) {
	t.Helper()
	var ids []string
	if err := db.View(func(tx *kv.Tx) error {
		var err error
		ids, err = store.AccountIDs(tx, "w")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 37 {
		if err := db.Update(func(tx *kv.Tx) error {
			for _, id := range ids[i:min(i+37, len(ids))] {
				if err := app.EvaluateOne(e, tx, "w", id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func sameStore(t *testing.T, what string, want, got *kv.DB) {
	t.Helper()
	a, b := dumpState(t, want), dumpState(t, got)
	if a == b {
		return
	}
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range la {
		if i < len(lb) && la[i] != lb[i] {
			t.Logf("first difference at line %d:\nwant %s\ngot  %s", i, la[i], lb[i])
			break
		}
	}
	t.Fatalf("%s: rescored store differs from evaluating each account (%d vs %d bytes)", what, len(a), len(b))
}

// TestRescoreEqualsEvaluatingEachAccount checks that a full rescore, with
// its chunking, parallel scoring and bulk writes, leaves exactly the store
// (records, signals, snapshots, timers, health log) that evaluating every
// account one by one does: on a new day, again on the same day, and after
// a model change.
func TestRescoreEqualsEvaluatingEachAccount(t *testing.T) {
	clk := clock.NewManual(t0.AddDate(0, 0, 90))
	want := openDB(t, filepath.Join(t.TempDir(), "want.db"))
	defer want.Close()
	got := openDB(t, filepath.Join(t.TempDir(), "got.db"))
	defer got.Close()
	const n = 1000
	seedRescore(t, want, clk, n)
	seedRescore(t, got, clk, n)
	sameStore(t, "seeded", want, got)

	ref, e := newApp(t, want, clk), newApp(t, got, clk)
	app.SetRescoreChunk(e, 97)
	steps := []struct {
		name    string
		advance time.Duration
		before  func(*kv.DB)
	}{
		{name: "first rescore", advance: 24 * time.Hour},
		{name: "same day again"},
		{name: "later the same day", advance: 3 * time.Hour},
		{name: "model change", advance: 24 * time.Hour, before: func(db *kv.DB) { activateOther(t, db) }},
		{name: "a week later", advance: 7 * 24 * time.Hour},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.before != nil {
			s.before(want)
			s.before(got)
		}
		evaluateEach(t, want, ref)
		total, err := e.Rescore(context.Background(), "w")
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if total != n+3 {
			t.Fatalf("%s: rescored %d accounts, want %d", s.name, total, n+3)
		}
		sameStore(t, s.name, want, got)
	}
}

// splitLog separates the health log from a dump and sorts its records, so
// logs can be compared regardless of how writers interleaved.
func splitLog(d string) (rest string, log []string) {
	var keep []string
	for _, l := range strings.Split(d, "\n") {
		if strings.HasPrefix(l, "testlog/") {
			log = append(log, l[strings.LastIndex(l, "=")+1:])
			continue
		}
		keep = append(keep, l)
	}
	sort.Strings(log)
	return strings.Join(keep, "\n"), log
}

// TestRescoreRevalidatesConcurrentChanges changes accounts (an event, a
// stage transition, a deletion) after their chunk was read and scored but
// before it is written: the rescore must score those accounts again from
// their new state and skip the deleted one, ending exactly where applying
// the changes first and then rescoring does.
func TestRescoreRevalidatesConcurrentChanges(t *testing.T) {
	clk := clock.NewManual(t0.AddDate(0, 0, 90))
	want := openDB(t, filepath.Join(t.TempDir(), "want.db"))
	defer want.Close()
	got := openDB(t, filepath.Join(t.TempDir(), "got.db"))
	defer got.Close()
	const n = 400
	seedRescore(t, want, clk, n)
	seedRescore(t, got, clk, n)
	clk.Advance(24 * time.Hour)

	changes := func(db *kv.DB, e *app.App) {
		t.Helper()
		recs := []*ingestionv1.LogRecord{
			event("acct-000150", 90, track, "u9", "feature_x"),
			event("acct-000151", 90, grp, "", "", "seats", 50, "arr", 99000),
			{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "w", AccountId: "acct-000152"}}},
		}
		if err := db.Update(func(tx *kv.Tx) error {
			if err := e.ApplyIngestion(tx, 0, recs); err != nil {
				return err
			}
			return e.ApplyStages(tx, 0, []*stagesv1.LogRecord{{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
				Workspace: "w", AccountId: "acct-000153", ToStage: "expansion", At: timestamppb.New(clk.Now().Add(-time.Hour)),
			}}}})
		}); err != nil {
			t.Fatal(err)
		}
	}

	ref := newApp(t, want, clk)
	changes(want, ref)
	evaluateEach(t, want, ref)

	e := newApp(t, got, clk)
	app.SetRescoreChunk(e, 100)
	// History's 3 accounts sort before the synthetic ones: acct-000150 is
	// account 153 in id order. Change it and its neighbours just before
	// its chunk is written.
	target := 0
	for i, end := range app.ChunkEnds(n+3, 100) {
		if end > 153 {
			target = i
			break
		}
	}
	changed := false
	app.BeforeRescoreWrite(e, func(i int) {
		if i == target {
			changes(got, e)
			changed = true
		}
	})
	total, err := e.Rescore(context.Background(), "w")
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("the changes were not applied")
	}
	if total != n+3-1 {
		t.Fatalf("rescored %d accounts, want %d (one deleted)", total, n+3-1)
	}
	a, la := splitLog(dumpState(t, want))
	b, lb := splitLog(dumpState(t, got))
	if a != b {
		sa, sb := strings.Split(a, "\n"), strings.Split(b, "\n")
		for i := range sa {
			if i < len(sb) && sa[i] != sb[i] {
				t.Logf("first difference at line %d:\nwant %s\ngot  %s", i, sa[i], sb[i])
				break
			}
		}
		t.Fatal("store differs from applying the changes before the rescore")
	}
	if strings.Join(la, "\n") != strings.Join(lb, "\n") {
		for i := range la {
			if la[i] != lb[i] {
				t.Logf("first difference at %d:\nwant %s\ngot  %s", i, la[i], lb[i])
				break
			}
		}
		t.Fatalf("health log differs: %d records, want %d", len(lb), len(la))
	}
}

// TestRescoreCancel stops a rescore between chunks: the chunks already
// committed are reported and stay committed, the scoring goroutines end,
// and running it again completes the work.
func TestRescoreCancel(t *testing.T) {
	clk := clock.NewManual(t0.AddDate(0, 0, 90))
	db := openDB(t, filepath.Join(t.TempDir(), "h.db"))
	defer db.Close()
	seedRescore(t, db, clk, 500)
	clk.Advance(24 * time.Hour)
	e := newApp(t, db, clk)
	app.SetRescoreChunk(e, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app.BeforeRescoreWrite(e, func(i int) {
		if i == 2 {
			cancel()
		}
	})
	n, err := e.Rescore(ctx, "w")
	// The chunk being written when canceled completes.
	if want := app.ChunkEnds(503, 100)[2]; !errors.Is(err, context.Canceled) || n != want {
		t.Fatalf("got %d, %v; want %d accounts and context.Canceled", n, err, want)
	}
	app.BeforeRescoreWrite(e, nil)
	if n, err := e.Rescore(ctx, "w"); !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("canceled before it started: %d, %v", n, err)
	}
	if n, err := e.Rescore(context.Background(), "w"); err != nil || n != 503 {
		t.Fatalf("second run: %d, %v", n, err)
	}
}

func TestChunkEnds(t *testing.T) {
	tests := []struct {
		n, chunk int
		want     []int
	}{
		{0, 4096, nil},
		{1, 4096, []int{1}},
		{5000, 4096, []int{4096, 5000}},
		{100, 8, []int{1, 3, 7, 15, 23, 31, 39, 47, 55, 63, 71, 79, 87, 93, 97, 99, 100}},
		{20, 8, []int{8, 16, 20}},
		{22, 8, []int{1, 3, 7, 15, 19, 21, 22}},
		{13, 8, []int{8, 13}},
		{10, 1, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	}
	for _, tt := range tests {
		got := app.ChunkEnds(tt.n, tt.chunk)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ChunkEnds(%d, %d) = %v, want %v", tt.n, tt.chunk, got, tt.want)
		}
	}
	// Every split covers all accounts in increasing ends, none above chunk.
	for n := 0; n < 300; n++ {
		for _, chunk := range []int{1, 3, 8, 64, 4096} {
			prev := 0
			for _, end := range app.ChunkEnds(n, chunk) {
				if end <= prev || end-prev > chunk {
					t.Fatalf("ChunkEnds(%d, %d): bad chunk %d..%d", n, chunk, prev, end)
				}
				prev = end
			}
			if prev != n {
				t.Fatalf("ChunkEnds(%d, %d) ends at %d", n, chunk, prev)
			}
		}
	}
}

// TestRescoreRestoresGCPercent checks that the GC target raised during a
// rescore is put back, and that a higher setting is left alone.
func TestRescoreRestoresGCPercent(t *testing.T) {
	clk := clock.NewManual(t0.AddDate(0, 0, 90))
	db := openDB(t, filepath.Join(t.TempDir(), "h.db"))
	defer db.Close()
	seedRescore(t, db, clk, 10)
	e := newApp(t, db, clk)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, before := range []int{100, 50, 1000, -1} {
		debug.SetGCPercent(before)
		during := 0
		app.BeforeRescoreWrite(e, func(int) {
			during = debug.SetGCPercent(-1)
			debug.SetGCPercent(during)
		})
		if _, err := e.Rescore(context.Background(), "w"); err != nil {
			t.Fatal(err)
		}
		want := max(before, 200)
		if before < 0 {
			want = -1
		}
		if during != want {
			t.Errorf("GOGC %d: %d during the rescore, want %d", before, during, want)
		}
		if after := debug.SetGCPercent(100); after != before {
			t.Errorf("GOGC %d: %d after the rescore", before, after)
		}
	}
}
