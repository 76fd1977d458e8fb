package store

import (
	"errors"
	"testing"

	"github.com/cairn-dev/cairn/pkg/domain/account"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

// TestAggregateCache checks that a deferred read takes the aggregates the
// previous batch wrote from the cache while the store holds their bytes,
// and decodes the store's when anything else wrote them or the writing
// transaction rolled back.
func TestAggregateCache(t *testing.T) {
	db := storetest.Open(t)
	cache := NewAggregateCache(1 << 20)
	var last *account.Aggregates
	// batch reads acme's aggregates as the ingestion consumer does,
	// reports whether it got the ones last written, sets their seats and
	// fails with fail.
	batch := func(seats int64, fail error) (reused bool, before int64) {
		t.Helper()
		err := db.Update(func(btx *pstore.Tx) error {
			tx := In(btx, "ws")
			tx.DeferAggregates(cache)
			a, err := tx.Aggregates("acme")
			if err != nil {
				return err
			}
			reused, before = a == last, a.Seats
			a.Seats = seats
			if err := tx.PutAggregates("acme", a); err != nil {
				return err
			}
			if err := tx.FlushAggregates(); err != nil {
				return err
			}
			last = a
			return fail
		})
		if !errors.Is(err, fail) {
			t.Fatal(err)
		}
		return reused, before
	}
	steps := []struct {
		name       string
		run        func() (bool, int64)
		wantReused bool
		wantBefore int64
	}{
		{"first read decodes", func() (bool, int64) { return batch(1, nil) }, false, 0},
		{"next batch reuses", func() (bool, int64) { return batch(2, nil) }, true, 1},
		{"rolled back batch", func() (bool, int64) { return batch(3, errFail) }, true, 2},
		{"after a rollback the store's bytes are decoded", func() (bool, int64) { return batch(4, nil) }, false, 2},
		{"another writer", func() (bool, int64) {
			err := db.Update(func(btx *pstore.Tx) error {
				a := account.New("ws", "acme")
				a.Seats = 9
				return In(btx, "ws").PutAggregates("acme", a)
			})
			if err != nil {
				t.Fatal(err)
			}
			return batch(5, nil)
		}, false, 9},
		{"deleted", func() (bool, int64) {
			if err := db.Update(func(btx *pstore.Tx) error { return In(btx, "ws").DeleteAggregates("acme") }); err != nil {
				t.Fatal(err)
			}
			return batch(6, nil)
		}, false, 0},
		{"and reused again", func() (bool, int64) { return batch(7, nil) }, true, 6},
	}
	for _, s := range steps {
		if reused, before := s.run(); reused != s.wantReused || before != s.wantBefore {
			t.Fatalf("%s: reused %v seats %d, want %v %d", s.name, reused, before, s.wantReused, s.wantBefore)
		}
	}
}

var errFail = errors.New("fail")
