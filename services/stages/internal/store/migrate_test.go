package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// dump renders every key and value of every bucket, nested buckets
// included, except the top-level buckets in skip.
func dump(t *testing.T, db *store.DB, skip ...string) []string {
	t.Helper()
	var out []string
	var walk func(path string, b *bbolt.Bucket) error
	walk = func(path string, b *bbolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(path+"/"+hex.EncodeToString(k), b.Bucket(k))
			}
			out = append(out, path+"/"+hex.EncodeToString(k)+"="+hex.EncodeToString(v))
			return nil
		})
	}
	err := db.View(func(tx *store.Tx) error {
		return tx.Bolt().ForEach(func(name []byte, b *bbolt.Bucket) error {
			if slices.Contains(skip, string(name)) {
				return nil
			}
			return walk(string(name), b)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrateSchema1 writes a file in the schema 1 layout, byte for byte as
// the schema 1 PutDefinition and SetActive wrote it, opens it with Open and
// finds every definition and active version in pkg/store.Versions, with
// every other stored byte unchanged.
func TestMigrateSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stages.db")
	old, err := store.Open(path, store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	type def struct {
		ws, id  string
		version uint32
	}
	defs := []def{
		{"w", "default", 1}, {"w", "default", 2}, {"w", "default", 3},
		{"w", "b2b", 1}, {"w", "zz", 1}, {"w", "unused", 1},
		{"w2", "default", 1},
		// Neighbours: "on" is a prefix of "onboarding", "acme" of "acme2".
		{"acme", "on", 1}, {"acme", "onboarding", 256}, {"acme2", "on", 7},
	}
	active := []def{{"w", "default", 2}, {"w", "b2b", 1}, {"w", "zz", 1}, {"w2", "default", 1}, {"acme", "onboarding", 256}, {"acme2", "on", 7}}
	defOf := func(d def) *stagesv1.JourneyDefinition {
		return &stagesv1.JourneyDefinition{
			Id: d.id, Version: d.version, Name: fmt.Sprintf("%s/%s/v%d", d.ws, d.id, d.version),
			Stages:    []*stagesv1.Stage{{Id: "one", Entry: []*stagesv1.Criterion{{Name: "c", Expr: "true"}}}},
			CreatedAt: timestamppb.New(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)),
		}
	}
	err = old.Update(func(tx *store.Tx) error {
		b := tx.Bolt()
		db, err := b.CreateBucketIfNotExists([]byte("definitions"))
		if err != nil {
			return err
		}
		for _, d := range defs {
			raw, err := proto.Marshal(defOf(d))
			if err != nil {
				return err
			}
			if err := db.Put(append(Key(d.ws, d.id), u32(d.version)...), raw); err != nil {
				return err
			}
		}
		ab, err := b.CreateBucketIfNotExists([]byte("active"))
		if err != nil {
			return err
		}
		for _, a := range active {
			if err := ab.Put(Key(a.ws, a.id), u32(a.version)); err != nil {
				return err
			}
		}
		// Other state, which the migration must leave as it is.
		agg := account.New("w", "a")
		agg.Seats = 3
		if err := Live.PutAccount(tx, &Account{Journey: &stagesv1.AccountJourney{Workspace: "w", JourneyId: "default", AccountId: "a", Stage: "one"}, Aggs: agg}); err != nil {
			return err
		}
		if err := Live.PutVisit(tx, "w", "default", &Visit{Stage: "one", Account: "a", Entered: t0, Cohort: "2026-03"}); err != nil {
			return err
		}
		if err := Live.SetTimer(tx, "w", "default", "a", t0.Add(time.Hour), 1); err != nil {
			return err
		}
		return PutReplay(tx, "w", &stagesv1.Replay{ReplayId: "r1", JourneyId: "default", Version: 3, State: stagesv1.ReplayState_REPLAY_STATE_DONE})
	})
	if err != nil {
		t.Fatal(err)
	}
	before := dump(t, old, "definitions", "active", "_meta")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
		t.Fatalf("schema version = %d, %v; want %d", v, err, SchemaVersion)
	}
	err = db.View(func(tx *store.Tx) error {
		for _, d := range defs {
			got, err := GetDefinition(tx, d.ws, d.id, d.version)
			if err != nil {
				t.Errorf("%s/%s v%d: %v", d.ws, d.id, d.version, err)
				continue
			}
			if !proto.Equal(got, defOf(d)) {
				t.Errorf("%s/%s v%d = %v, want %v", d.ws, d.id, d.version, got, defOf(d))
			}
		}
		for _, tc := range []struct {
			ws, id string
			latest uint32
		}{{"w", "default", 3}, {"w", "b2b", 1}, {"acme", "on", 1}, {"acme", "onboarding", 256}, {"acme2", "on", 7}, {"acme", "onb", 0}} {
			if got, err := LatestVersion(tx, tc.ws, tc.id); err != nil || got != tc.latest {
				t.Errorf("latest %s/%s = %d, %v; want %d", tc.ws, tc.id, got, err, tc.latest)
			}
		}
		for _, a := range active {
			if got, err := Active(tx, a.ws, a.id); err != nil || got != a.version {
				t.Errorf("active %s/%s = %d, %v; want %d", a.ws, a.id, got, err, a.version)
			}
			if got, err := GetDefinition(tx, a.ws, a.id, 0); err != nil || got.GetVersion() != a.version {
				t.Errorf("active definition %s/%s = v%d, %v; want v%d", a.ws, a.id, got.GetVersion(), err, a.version)
			}
		}
		if _, err := Active(tx, "w", "unused"); !errors.Is(err, ErrNotFound) {
			t.Errorf("journey without an active version: err = %v, want ErrNotFound", err)
		}
		// The order the journeys of a workspace are evaluated in is
		// schema 1's: shorter ids first.
		act, err := ActiveJourneys(tx, "w")
		if err != nil || fmt.Sprint(act) != "[{zz 1} {b2b 1} {default 2}]" {
			t.Errorf("active journeys of w = %v, %v; want [{zz 1} {b2b 1} {default 2}]", act, err)
		}
		var versions []uint32
		if err := Versions(tx, "w", "default", 0, func(d *stagesv1.JourneyDefinition) (bool, error) {
			versions = append(versions, d.GetVersion())
			return true, nil
		}); err != nil {
			return err
		}
		if fmt.Sprint(versions) != "[3 2 1]" {
			t.Errorf("versions of w/default = %v, want [3 2 1]", versions)
		}
		for _, name := range []string{"definitions", "active"} {
			if tx.Bolt().Bucket([]byte(name)) != nil {
				t.Errorf("schema 1 bucket %q survives the migration", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after := dump(t, db, "_versions", "_active", "_meta")
	if strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("the migration changed other state:\nbefore %v\nafter  %v", before, after)
	}
}

// TestMigrateRefusesNUL checks that a definition Versions cannot key stops
// the migration, leaving the file as it was, instead of being dropped.
func TestMigrateRefusesNUL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stages.db")
	old, err := store.Open(path, store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = old.Update(func(tx *store.Tx) error {
		b, err := tx.Bolt().CreateBucketIfNotExists([]byte("definitions"))
		if err != nil {
			return err
		}
		raw, err := proto.Marshal(&stagesv1.JourneyDefinition{Id: "j", Version: 1})
		if err != nil {
			return err
		}
		return b.Put(append(Key("w\x00x", "j"), u32(1)...), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path, true); err == nil || !strings.Contains(err.Error(), "holds NUL") {
		if db != nil {
			_ = db.Close()
		}
		t.Fatalf("Open = %v, want an error naming the NUL", err)
	}
	old, err = store.Open(path, store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Close() }()
	if v, err := old.SchemaVersion(); err != nil || v != 1 {
		t.Errorf("schema version after a failed migration = %d, %v; want 1", v, err)
	}
}
