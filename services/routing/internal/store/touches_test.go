package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	pstore "github.com/cairn-dev/cairn/pkg/store"
)

func TestTouches(t *testing.T) {
	day := int64(24 * time.Hour / time.Second)
	keep := int64(TouchRetention / time.Second)
	type add struct {
		acct string
		at   int64
		kind string
	}
	tests := []struct {
		name  string
		adds  []add
		acct  string
		since int64
		limit int
		want  string
		has   bool
	}{
		{"none", nil, "a", 0, 10, "", false},
		{"in time order whatever the arrival order", []add{{"a", 30, "contacted"}, {"a", 10, "meeting_booked"}, {"a", 20, "contacted"}}, "a", 0, 10, "10:meeting_booked 20:contacted 30:contacted", true},
		{"since is inclusive", []add{{"a", 10, "contacted"}, {"a", 20, "contacted"}}, "a", 20, 10, "20:contacted", true},
		{"limit", []add{{"a", 10, "contacted"}, {"a", 20, "contacted"}, {"a", 30, "contacted"}}, "a", 0, 2, "10:contacted 20:contacted", true},
		{"the same touch twice is kept once", []add{{"a", 10, "contacted"}, {"a", 10, "contacted"}}, "a", 0, 10, "10:contacted", true},
		{"an account whose id extends another's is apart", []add{{"a", 10, "contacted"}, {"ab", 5, "contacted"}, {"b", 1, "contacted"}}, "a", 0, 10, "10:contacted", true},
		{"the longer id sees only its own", []add{{"a", 10, "contacted"}, {"ab", 5, "contacted"}}, "ab", 0, 10, "5:contacted", true},
		{"older than the retention before the newest is dropped", []add{{"a", 1, "contacted"}, {"a", 2 * day, "contacted"}, {"a", 1 + keep + day, "contacted"}}, "a", 0, 10, fmt.Sprintf("%d:contacted %d:contacted", 2*day, 1+keep+day), true},
		{"a late old touch is dropped at once", []add{{"a", 2 * keep, "contacted"}, {"a", 1, "contacted"}}, "a", 0, 10, fmt.Sprintf("%d:contacted", 2*keep), true},
		{"other accounts are not trimmed", []add{{"b", 1, "contacted"}, {"a", 2 * keep, "contacted"}}, "b", 0, 10, "1:contacted", true},
		{"before 1970 counts as 1970", []add{{"a", -5, "contacted"}}, "a", 0, 10, "0:contacted", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := OpenDB(filepath.Join(t.TempDir(), "r.db"), pstore.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(btx *pstore.Tx) error {
				for _, a := range tt.adds {
					if err := In(btx, "ws").AddTouch(a.acct, a.at, a.kind); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = db.View(func(btx *pstore.Tx) error {
				tx := In(btx, "ws")
				ts, err := tx.TouchesSince(tt.acct, tt.since, tt.limit)
				if err != nil {
					return err
				}
				got := ""
				for i, tc := range ts {
					if i > 0 {
						got += " "
					}
					got += fmt.Sprintf("%d:%s", tc.At, tc.Kind)
				}
				if got != tt.want {
					t.Errorf("touches %q, want %q", got, tt.want)
				}
				if has, err := tx.HasTouches(tt.acct); err != nil || has != tt.has {
					t.Errorf("HasTouches = %v (%v), want %v", has, err, tt.has)
				}
				if other, _ := In(btx, "other").TouchesSince(tt.acct, 0, 10); len(other) != 0 {
					t.Errorf("another workspace sees %v", other)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(btx *pstore.Tx) error { return In(btx, "ws").DeleteTouches(tt.acct) })
			if err != nil {
				t.Fatal(err)
			}
			_ = db.View(func(btx *pstore.Tx) error {
				if has, _ := In(btx, "ws").HasTouches(tt.acct); has {
					t.Errorf("touches of %s left after DeleteTouches", tt.acct)
				}
				return nil
			})
		})
	}
}

// TestOpenMigratesTouches opens a schema 2 file whose accounts keep their
// touches in the account record: they move to the touches bucket, and the
// account keeps everything else.
func TestOpenMigratesTouches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("_meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema_version"), []byte{0, 0, 0, 2}); err != nil {
			return err
		}
		accts, err := tx.CreateBucket([]byte("ws"))
		if err != nil {
			return err
		}
		wb, err := accts.CreateBucket([]byte("acme-ws"))
		if err != nil {
			return err
		}
		ab, err := wb.CreateBucket([]byte("accounts"))
		if err != nil {
			return err
		}
		if err := ab.Put([]byte("acme"), []byte(`{"owners":{"TEAM_CSM":"cara"},"touches":[{"at":100,"kind":"contacted"},{"at":200,"kind":"meeting_booked"}]}`)); err != nil {
			return err
		}
		return ab.Put([]byte("quiet"), []byte(`{"domain":"quiet.io"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	for open := range 2 { // the second open finds the file migrated
		db, err := OpenDB(path, pstore.Options{NoSync: true})
		if err != nil {
			t.Fatalf("open %d: %v", open, err)
		}
		err = db.View(func(btx *pstore.Tx) error {
			tx := In(btx, "acme-ws")
			ts, err := tx.TouchesSince("acme", 0, 10)
			if err != nil {
				return err
			}
			if len(ts) != 2 || ts[0] != (Touch{100, "contacted"}) || ts[1] != (Touch{200, "meeting_booked"}) {
				t.Errorf("migrated touches %v", ts)
			}
			a, err := tx.Account("acme")
			if err != nil {
				return err
			}
			if len(a.Touches) != 0 || a.Owners["TEAM_CSM"] != "cara" {
				t.Errorf("migrated account %+v", a)
			}
			if q, _ := tx.Account("quiet"); q.Domain != "quiet.io" {
				t.Errorf("untouched account changed: %+v", q)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
