package app_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/app"
)

// sameState fails t unless both stores hold the same state and health log.
func sameState(t *testing.T, a, b *kv.DB) {
	t.Helper()
	if da, db := dumpState(t, a), dumpState(t, b); da != db {
		la, lb := strings.Split(da, "\n"), strings.Split(db, "\n")
		for i := 0; i < min(len(la), len(lb)); i++ {
			if la[i] != lb[i] {
				t.Fatalf("stores differ at line %d:\n%s\n%s", i, la[i], lb[i])
			}
		}
		t.Fatalf("stores differ in length: %d and %d lines", len(la), len(lb))
	}
	ra, rb := readLog(t, a, 4), readLog(t, b, 4)
	if len(ra) != len(rb) {
		t.Fatalf("%d and %d health log records", len(ra), len(rb))
	}
	for i := range ra {
		if !proto.Equal(ra[i], rb[i]) {
			t.Fatalf("health log record %d differs:\n%v\n%v", i, ra[i], rb[i])
		}
	}
}

// TestOneBatchEqualsOneEventPerBatch applies the whole history (90 days of
// several accounts, signals, trends, tombstones) in one transaction and
// one event per transaction: a batch writes each account once, from its
// last evaluation, keeps its latest snapshot until a later day reads it
// as a trend prior, and reads each day's priors once, so both must give
// the same stores and the same health log.
func TestOneBatchEqualsOneEventPerBatch(t *testing.T) {
	recs := history()
	clk := clock.NewManual(t0.AddDate(0, 0, 90))
	one := openDB(t, filepath.Join(t.TempDir(), "one.db"))
	defer one.Close()
	ea := newApp(t, one, clk)
	app.SetAccountCache(ea, 0)
	apply(t, one, ea, recs, 1)

	all := openDB(t, filepath.Join(t.TempDir(), "all.db"))
	defer all.Close()
	eb := newApp(t, all, clk)
	app.SetAccountCache(eb, 0)
	apply(t, all, eb, recs, len(recs))
	sameState(t, one, all)
}

// TestAccountCacheEqualsDecoding applies the same records, stage changes,
// rescores, timers and rolled back transactions to two stores, one with
// the account cache and one without: what the cache keeps must never
// differ from decoding what is stored.
func TestAccountCacheEqualsDecoding(t *testing.T) {
	recs := history()
	type side struct {
		db  *kv.DB
		e   *app.App
		clk *clock.Manual
	}
	var sides [2]side
	for i := range sides {
		clk := clock.NewManual(t0)
		db := openDB(t, filepath.Join(t.TempDir(), fmt.Sprint(i, ".db")))
		defer db.Close()
		e := newApp(t, db, clk)
		if i == 0 {
			app.SetAccountCache(e, 0)
		}
		sides[i] = side{db: db, e: e, clk: clk}
	}
	errRollback := errors.New("rolled back")
	stage := 0
	for i := 0; i < len(recs); i += 4 {
		part := recs[i:min(i+4, len(recs))]
		at := part[0].GetEvent().GetTimestamp().AsTime()
		if (i/4)%9 == 4 {
			stage++
		}
		for _, s := range sides {
			if at.After(s.clk.Now()) {
				s.clk.Set(at)
			}
			switch (i / 4) % 9 {
			case 2:
				// Applied, then rolled back: the store keeps the bytes from
				// before, the cache saw the new ones.
				err := s.db.Update(func(tx *kv.Tx) error {
					if err := s.e.ApplyIngestion(tx, 0, part); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					t.Fatal(err)
				}
			case 4:
				// The stages consumer changes an account in between.
				tr := &stagesv1.LogRecord{Offset: uint64(stage), Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
					Workspace: "w", AccountId: fmt.Sprint("acct-", stage%4), ToStage: fmt.Sprint("stage-", stage%3),
					At: timestamppb.New(at)}}}
				if err := s.db.Update(func(tx *kv.Tx) error { return s.e.ApplyStages(tx, 0, []*stagesv1.LogRecord{tr}) }); err != nil {
					t.Fatal(err)
				}
			case 6:
				// A rescore and the timers change accounts a day later.
				s.clk.Set(s.clk.Now().Add(25 * time.Hour))
				if _, err := s.e.Rescore(context.Background(), "w"); err != nil {
					t.Fatal(err)
				}
				if _, err := s.e.FireDue(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.db.Update(func(tx *kv.Tx) error { return s.e.ApplyIngestion(tx, 0, part) }); err != nil {
				t.Fatal(err)
			}
		}
		// Every step, so that a difference shows where it starts.
		if dumpState(t, sides[0].db) != dumpState(t, sides[1].db) {
			t.Logf("after records %d to %d", i, i+len(part))
			sameState(t, sides[0].db, sides[1].db)
		}
	}
	sameState(t, sides[0].db, sides[1].db)
}
