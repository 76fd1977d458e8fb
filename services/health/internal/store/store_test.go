package store_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

func TestSnapshots(t *testing.T) {
	db := storetest.Open(t)
	days := []string{"2026-01-01", "2026-01-03", "2026-01-10"}
	if err := db.Update(func(tx *kv.Tx) error {
		for i, d := range days {
			if err := store.PutSnapshot(tx, "w", "a", &store.Snapshot{Day: d, Score: float64(i)}); err != nil {
				return err
			}
		}
		// Neighbours that must never leak into "a".
		if err := store.PutSnapshot(tx, "w", "a2", &store.Snapshot{Day: "2026-01-02", Score: 99}); err != nil {
			return err
		}
		return store.PutSnapshot(tx, "w", "", &store.Snapshot{Day: "2026-01-05", Score: 98})
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		day  string
		want string // "" = not found
	}{
		{"2025-12-31", ""},
		{"2026-01-01", "2026-01-01"},
		{"2026-01-02", "2026-01-01"},
		{"2026-01-09", "2026-01-03"},
		{"2026-01-10", "2026-01-10"},
		{"2027-01-01", "2026-01-10"},
	}
	for _, tt := range tests {
		t.Run("at "+tt.day, func(t *testing.T) {
			var got *store.Snapshot
			err := db.View(func(tx *kv.Tx) error {
				var err error
				got, err = store.SnapshotAt(tx, "w", "a", tt.day)
				return err
			})
			switch {
			case tt.want == "" && !errors.Is(err, store.ErrNotFound):
				t.Fatalf("got %v %v, want not found", got, err)
			case tt.want != "" && (err != nil || got.Day != tt.want):
				t.Fatalf("got %v %v, want %s", got, err, tt.want)
			}
			var score float64
			err = db.View(func(tx *kv.Tx) error {
				var err error
				score, err = store.SnapshotScoreAt(tx, "w", "a", tt.day)
				return err
			})
			switch {
			case tt.want == "" && !errors.Is(err, store.ErrNotFound):
				t.Fatalf("score: got %v %v, want not found", score, err)
			case tt.want != "" && (err != nil || score != got.Score):
				t.Fatalf("score: got %v %v, want %v", score, err, got.Score)
			}
		})
	}
	for _, tt := range []struct{ before, want string }{
		{"", "2026-01-10,2026-01-03,2026-01-01"},
		{"2026-01-10", "2026-01-03,2026-01-01"},
		{"2026-01-02", "2026-01-01"},
		{"2026-01-01", ""},
	} {
		t.Run("scan before "+tt.before, func(t *testing.T) {
			var got []string
			if err := db.View(func(tx *kv.Tx) error {
				return store.ScanSnapshots(tx, "w", "a", tt.before, func(s *store.Snapshot) (bool, error) {
					got = append(got, s.Day)
					return true, nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tt.want {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestTimers(t *testing.T) {
	db := storetest.Open(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.Update(func(tx *kv.Tx) error {
		for i, a := range []string{"a", "b", "c"} {
			if err := store.ArmTimer(tx, "w", a, t0.Add(time.Duration(i)*time.Hour)); err != nil {
				return err
			}
		}
		// Re-arming replaces: "a" moves after "c".
		return store.ArmTimer(tx, "w", "a", t0.Add(5*time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	var due []store.Timer
	var next time.Time
	if err := db.View(func(tx *kv.Tx) error {
		var err error
		if due, err = store.DueTimers(tx, t0.Add(2*time.Hour), 10); err != nil {
			return err
		}
		next, _, err = store.NextTimer(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0].Account != "b" || due[1].Account != "c" || !next.Equal(t0.Add(time.Hour)) {
		t.Fatalf("due %v next %v", due, next)
	}
	if err := db.Update(func(tx *kv.Tx) error { return store.DeleteAccount(tx, "w", "b") }); err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *kv.Tx) error {
		due, _ = store.DueTimers(tx, t0.Add(10*time.Hour), 10)
		return nil
	})
	if len(due) != 2 || due[0].Account != "c" || due[1].Account != "a" {
		t.Fatalf("after delete: %v", due)
	}
}

func TestModelsAndAccounts(t *testing.T) {
	db := storetest.Open(t)
	if err := db.Update(func(tx *kv.Tx) error {
		for i := 0; i < 3; i++ {
			m := &healthv1.Model{Id: "m"}
			if err := store.PutModel(tx, "w", m); err != nil {
				return err
			}
			if m.GetVersion() != uint32(i+1) {
				t.Errorf("version %d, want %d", m.GetVersion(), i+1)
			}
		}
		if err := store.PutModel(tx, "w", &healthv1.Model{Id: "m2"}); err != nil {
			return err
		}
		if err := store.SetActive(tx, "w", "m", 2); err != nil {
			return err
		}
		a := &store.Account{Agg: account.New("w", "acme"), Meta: store.Meta{Stage: "adoption"}}
		return store.PutAccount(tx, a, true)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *kv.Tx) error {
		ms, err := store.ListModels(tx, "w", "m", 0, 10)
		if err != nil || len(ms) != 3 || ms[0].GetVersion() != 3 {
			t.Errorf("list: %v %v", ms, err)
		}
		ms, _ = store.ListModels(tx, "w", "m", 3, 1)
		if len(ms) != 1 || ms[0].GetVersion() != 2 {
			t.Errorf("list before 3: %v", ms)
		}
		id, ver, err := store.Active(tx, "w")
		if err != nil || id != "m" || ver != 2 {
			t.Errorf("active %q %d %v", id, ver, err)
		}
		if _, _, err := store.Active(tx, "other"); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("active of other workspace: %v", err)
		}
		a, err := store.GetAccount(tx, "w", "acme")
		if err != nil || a.Stage != "adoption" || a.Agg.NPS != -1 {
			t.Errorf("account: %+v %v", a, err)
		}
		if _, err := store.GetAccount(tx, "other", "acme"); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("account leaked across workspaces: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReader reads accounts in ascending, descending and mixed order,
// including missing ones, and checks every answer against plain lookups.
func TestReader(t *testing.T) {
	db := storetest.Open(t)
	exists := map[string]bool{}
	if err := db.Update(func(tx *kv.Tx) error {
		for i := 0; i < 300; i += 1 + i%3 {
			id := fmt.Sprintf("a%04d", i)
			exists[id] = true
			a := &store.Account{Agg: account.New("w", id), Meta: store.Meta{Stage: id}}
			if err := store.PutAccount(tx, a, true); err != nil {
				return err
			}
			if i%2 == 0 {
				if err := store.PutHealth(tx, &healthv1.AccountHealth{Workspace: "w", AccountId: id, Score: float64(i)}, &healthv1.AccountRow{AccountId: id}); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var asc []string
	for i := 0; i < 310; i++ {
		asc = append(asc, fmt.Sprintf("a%04d", i))
	}
	desc := make([]string, len(asc))
	for i, id := range asc {
		desc[len(asc)-1-i] = id
	}
	mixed := append(append([]string{}, asc[200:]...), asc[:200]...)
	for name, ids := range map[string][]string{"ascending": asc, "descending": desc, "mixed": mixed} {
		t.Run(name, func(t *testing.T) {
			if err := db.View(func(tx *kv.Tx) error {
				r, err := store.NewReader(tx, "w")
				if err != nil {
					return err
				}
				for _, id := range ids {
					got := r.Get(id).Clone()
					agg, meta, err := store.GetAccountRaw(tx, "w", id)
					if !exists[id] {
						if got.Agg != nil || err == nil {
							t.Fatalf("%s: got %+v / %v for a missing account", id, got, err)
						}
						continue
					}
					health, _ := store.GetHealthRaw(tx, "w", id)
					if want := (store.Stored{Agg: agg, Meta: meta, Health: health}); err != nil || !got.Equal(&want) {
						t.Fatalf("%s: got %+v, want %+v (%v)", id, got, want, err)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// v1Aggregate is an aggregate as the previous health service stored it
// (its own codec, version byte 1): account acct-0, a group call and five
// product tracks.
const v1Aggregate = "01017706616363742d300180869c9a0d0001809ec69a0d000204706c616e047465616d057365617473023130140000000000000000047465616d00000000000000000000010275300180869c9a0d0001809ec69a0d0000030266300180d8bb9a0d0002663101809ec69a0d00026632018092b19a0d0000030266300180d8bb9a0d0002663101809ec69a0d00026632018092b19a0d0005c2c002020102663002c4c002020102663102c6c002020102663202c8c002020102663002cac00202010266310200000000000000f0bf00000000"

// TestSchema1IsRebuiltFromLogs opens a schema-1 file, whose aggregates are
// in the old health encoding, with the current schema: the migration drops
// every derived bucket and resets every consumer cursor (so the consumers
// replay their logs), and keeps models.
func TestSchema1IsRebuiltFromLogs(t *testing.T) {
	old, err := hex.DecodeString(v1Aggregate)
	if err != nil {
		t.Fatal(err)
	}
	// The old encoding starts with the same version byte as pkg/domain/account's
	// first layout, which is why the file is versioned rather than decoded.
	if _, err := account.Unmarshal(old); !errors.Is(err, account.ErrCorrupt) {
		t.Fatalf("account.Unmarshal(old health encoding) = %v, want ErrCorrupt", err)
	}
	path := filepath.Join(t.TempDir(), "health.db")
	db, err := kv.Open(path, kv.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *kv.Tx) error {
		b, err := tx.Bucket("accounts", "w")
		if err != nil {
			return err
		}
		if err := b.Put([]byte("acct-0"), old); err != nil {
			return err
		}
		if err := store.NewWriter(tx, "w").PutMeta("acct-0", store.EncodeMeta(&store.Meta{Stage: "adoption"})); err != nil {
			return err
		}
		if err := store.ArmTimer(tx, "w", "acct-0", time.Unix(1e9, 0)); err != nil {
			return err
		}
		// A model in the layout of schemas 1 and 2.
		if err := putOldModel(tx.Bolt(), "w", &healthv1.Model{Id: "custom", Version: 1}); err != nil {
			return err
		}
		cur, err := tx.Bucket("_cursors")
		if err != nil {
			return err
		}
		for _, k := range []string{"ingestion/0", "ingestion/1", "ingestion-1/0", "stages/0"} {
			if err := cur.Put([]byte(k), kv.U64(42)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = kv.Open(path, kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion, Migrations: store.Migrations})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *kv.Tx) error {
		if ids, err := store.AccountIDs(tx, "w"); err != nil || len(ids) != 0 {
			t.Errorf("accounts after migration = %v, %v; want none", ids, err)
		}
		if _, _, err := store.GetAccountRaw(tx, "w", "acct-0"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old aggregate still readable: %v", err)
		}
		if _, ok, err := store.NextTimer(tx); ok || err != nil {
			t.Errorf("timers after migration: %v, %v; want none", ok, err)
		}
		for _, c := range []struct {
			name string
			p    uint32
		}{{"ingestion", 0}, {"ingestion", 1}, {"ingestion-1", 0}, {"stages", 0}} {
			if got, err := stream.ReadCursor(tx, c.name, c.p); err != nil || got != 0 {
				t.Errorf("cursor %s/%d = %d, %v; want 0", c.name, c.p, got, err)
			}
		}
		if _, err := store.GetModel(tx, "w", "custom", 1); err != nil {
			t.Errorf("model lost by the migration: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// putOldModel writes m as schema 2 (and 1) stored it, bypassing the
// current API: models/<ws>: id NUL U64(version) -> deterministic proto.
func putOldModel(tx *bbolt.Tx, ws string, m *healthv1.Model) error {
	b, err := kv.Bucket(tx, "models", ws)
	if err != nil {
		return err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(append(append([]byte(m.GetId()), 0), kv.U64(uint64(m.GetVersion()))...), raw)
}

// setOldActive writes the active model as schema 2 stored it:
// active/<ws>: "model" -> id NUL U64(version).
func setOldActive(tx *bbolt.Tx, ws, id string, version uint32) error {
	b, err := kv.Bucket(tx, "active", ws)
	if err != nil {
		return err
	}
	return b.Put([]byte("model"), append(append([]byte(id), 0), kv.U64(uint64(version))...))
}

// dumpBolt renders every key of every bucket but _meta, nested buckets as
// paths.
func dumpBolt(t *testing.T, db *kv.DB, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string, b *bbolt.Bucket) error
	walk = func(prefix string, b *bbolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+"/"+string(k), b.Bucket(k))
			}
			out[fmt.Sprintf("%s/%q", prefix, k)] = fmt.Sprintf("%x", v)
			return nil
		})
	}
	if err := db.Bolt().View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if string(name) == "_meta" || slices.Contains(skip, string(name)) {
				return nil
			}
			return walk(string(name), b)
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchema2ModelsMoveToVersions opens a schema-2 file, written byte by
// byte in the old layout (models and active models in health's own
// buckets), with the current schema: every model version and every active
// model is found through the current API, new versions follow the old
// ones, the old buckets are gone and nothing else changed.
func TestSchema2ModelsMoveToVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "health.db")
	db, err := kv.Open(path, kv.Options{NoSync: true, SchemaVersion: 2})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		ws, id string
		ver    uint32
	}
	written := map[key]*healthv1.Model{}
	for _, k := range []key{{"w", "m", 1}, {"w", "m", 2}, {"w", "m", 3}, {"w", "m2", 1}, {"x", "m", 1}, {"x", "default", 1}} {
		written[k] = &healthv1.Model{Id: k.id, Version: k.ver, Name: fmt.Sprintf("%s %s v%d", k.ws, k.id, k.ver),
			Components: []*healthv1.Component{{Name: "c", Measure: "1.0", Weight: float64(k.ver)}}}
	}
	if err := db.Bolt().Update(func(tx *bbolt.Tx) error {
		for k, m := range written {
			if err := putOldModel(tx, k.ws, m); err != nil {
				return err
			}
		}
		if err := setOldActive(tx, "w", "m", 2); err != nil {
			return err
		}
		// The old code created active/<ws> for every workspace it scored,
		// empty until a model was activated.
		if _, err := kv.Bucket(tx, "active", "y"); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Some state that the migration must leave as it is.
	if err := db.Update(func(tx *kv.Tx) error {
		a := &store.Account{Agg: account.New("w", "acme"), Meta: store.Meta{Stage: "adoption"}}
		if err := store.PutAccount(tx, a, true); err != nil {
			return err
		}
		if err := store.PutHealth(tx, &healthv1.AccountHealth{Workspace: "w", AccountId: "acme", Score: 42}, &healthv1.AccountRow{AccountId: "acme"}); err != nil {
			return err
		}
		return store.ArmTimer(tx, "w", "acme", time.Unix(2e9, 0))
	}); err != nil {
		t.Fatal(err)
	}
	before := dumpBolt(t, db, "models", "active")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = kv.Open(path, kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion, Migrations: store.Migrations})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(); err != nil || v != store.SchemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, store.SchemaVersion)
	}
	if err := db.View(func(tx *kv.Tx) error {
		for k, want := range written {
			got, err := store.GetModel(tx, k.ws, k.id, k.ver)
			if err != nil || !proto.Equal(got, want) {
				t.Errorf("model %+v: %v, %v; want %v", k, got, err, want)
			}
		}
		ms, err := store.ListModels(tx, "w", "m", 0, 10)
		if err != nil || len(ms) != 3 || ms[0].GetVersion() != 3 || ms[2].GetVersion() != 1 {
			t.Errorf("list w/m: %v %v", ms, err)
		}
		if id, ver, err := store.Active(tx, "w"); err != nil || id != "m" || ver != 2 {
			t.Errorf("active of w: %q %d %v; want m v2", id, ver, err)
		}
		for _, ws := range []string{"x", "y", "z"} {
			if _, _, err := store.Active(tx, ws); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("active of %s: %v, want not found", ws, err)
			}
		}
		for _, name := range []string{"models", "active"} {
			if tx.Bolt().Bucket([]byte(name)) != nil {
				t.Errorf("old bucket %q still there", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := dumpBolt(t, db, "_versions", "_active")
	if !maps.Equal(before, after) {
		t.Errorf("the migration changed other state:\nbefore %v\nafter  %v", before, after)
	}
	if err := db.Update(func(tx *kv.Tx) error {
		m := &healthv1.Model{Id: "m"}
		if err := store.PutModel(tx, "w", m); err != nil {
			return err
		}
		if m.GetVersion() != 4 {
			t.Errorf("next version %d, want 4", m.GetVersion())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
