package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"

	"github.com/cairn-dev/cairn/services/health/internal/engine"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// seedRescore fills db with the accounts of history() (real events,
// tickets, champions, deletions) plus n varied synthetic accounts.
func seedRescore(t *testing.T, db *kv.DB, clk *clock.Manual, n int) {
	t.Helper()
	apply(t, db, newEngine(t, clk), history(), 50)
	if err := db.Update(func(tx *bbolt.Tx) error {
		for i := 0; i < n; i++ {
			a := synthetic("w", i, clk.Now().AddDate(0, 0, -(i%5)))
			if i%3 == 0 {
				a.Stage, a.EnteredAt = "adoption", clk.Now().AddDate(0, 0, -(i%40))
			}
			if i%10 == 0 {
				a.Agg.CreatedAt = clk.Now().AddDate(0, 0, -(i % 25)) // onboarding profile
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
	if err := db.Update(func(tx *bbolt.Tx) error {
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
func evaluateEach(t *testing.T, db *kv.DB, e *engine.Engine) {
	t.Helper()
	var ids []string
	if err := db.View(func(tx *bbolt.Tx) error {
		var err error
		ids, err = store.AccountIDs(tx, "w")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 37 {
		if err := db.Update(func(tx *bbolt.Tx) error {
			for _, id := range ids[i:min(i+37, len(ids))] {
				if err := engine.EvaluateOne(e, tx, "w", id); err != nil {
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
	a, b := dump(t, want), dump(t, got)
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

	ref, e := newEngine(t, clk), newEngine(t, clk)
	engine.SetRescoreChunk(e, 97)
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
		total, err := e.Rescore(context.Background(), got, "w")
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if total != n+3 {
			t.Fatalf("%s: rescored %d accounts, want %d", s.name, total, n+3)
		}
		sameStore(t, s.name, want, got)
	}
}
