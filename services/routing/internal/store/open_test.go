package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
)

// writeSchema1 writes a routing file in the schema 1 layout, byte for
// byte: ws/<workspace>/configs/<version, 8 bytes> -> Config, and an owner
// that the migration must leave alone.
func writeSchema1(t *testing.T, path string, configs map[string][]*routingv1.Config, owner []byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("_meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema_version"), []byte{0, 0, 0, 1}); err != nil {
			return err
		}
		root, err := tx.CreateBucket([]byte("ws"))
		if err != nil {
			return err
		}
		for ws, versions := range configs {
			wb, err := root.CreateBucket([]byte(ws))
			if err != nil {
				return err
			}
			owners, err := wb.CreateBucket([]byte("owners"))
			if err != nil {
				return err
			}
			if err := owners.Put([]byte("alice"), owner); err != nil {
				return err
			}
			if len(versions) == 0 {
				continue
			}
			cb, err := wb.CreateBucket([]byte("configs"))
			if err != nil {
				return err
			}
			for _, c := range versions {
				raw, err := proto.Marshal(c)
				if err != nil {
					return err
				}
				if err := cb.Put(binary.BigEndian.AppendUint64(nil, uint64(c.GetVersion())), raw); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenMigratesConfigs opens a schema 1 file: every workspace's config
// versions move to the versioned-definitions store with their numbers, the
// latest active, the old buckets go, and the rest of the file is as it was.
func TestOpenMigratesConfigs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	owner, err := proto.Marshal(&routingv1.Owner{OwnerId: "alice", Team: routingv1.Team_TEAM_SDR})
	if err != nil {
		t.Fatal(err)
	}
	writeSchema1(t, path, map[string][]*routingv1.Config{
		"acme": {
			{Version: 1, FallbackPoolId: "p1"},
			{Version: 2, FallbackPoolId: "p2", Rules: []*routingv1.Rule{{Name: "r", PoolId: "p2", Action: routingv1.ActionKind_ACTION_KIND_POOL}}},
		},
		"globex": {{Version: 1, FallbackPoolId: "g"}},
		"empty":  nil,
	}, owner)

	for open := range 2 { // the second open finds the file migrated
		db, err := OpenDB(path, pstore.Options{NoSync: true})
		if err != nil {
			t.Fatalf("open %d: %v", open, err)
		}
		if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
			t.Fatalf("schema version %d (%v), want %d", v, err, SchemaVersion)
		}
		err = db.View(func(btx *pstore.Tx) error {
			type active struct {
				version  uint32
				fallback string
				versions int
			}
			wants := map[string]active{"acme": {2, "p2", 2}, "globex": {1, "g", 1}}
			if open == 1 {
				wants["globex"] = active{2, "p3", 2}
			}
			for ws, want := range wants {
				tx := In(btx, ws)
				c, err := tx.Config()
				if err != nil || c.GetVersion() != want.version || c.GetFallbackPoolId() != want.fallback || tx.ConfigVersion() != want.version {
					t.Errorf("%s: active config %v (%v), version %d; want v%d with fallback %s", ws, c, err, tx.ConfigVersion(), want.version, want.fallback)
				}
				var listed []uint32
				if err := tx.ConfigVersions(func(c *routingv1.Config) (bool, error) {
					listed = append(listed, c.GetVersion())
					return true, nil
				}); err != nil {
					return err
				}
				if len(listed) != want.versions || listed[0] != want.version {
					t.Errorf("%s: versions %v, want %d newest first from v%d", ws, listed, want.versions, want.version)
				}
				if b, _ := btx.Bucket("ws", ws, "configs"); b != nil {
					t.Errorf("%s: the schema 1 configs bucket is still there", ws)
				}
				if o, _ := btx.Bucket("ws", ws, "owners"); o == nil || !bytes.Equal(o.Get([]byte("alice")), owner) {
					t.Errorf("%s: owner bytes changed", ws)
				}
			}
			if _, err := In(btx, "empty").Config(); !errors.Is(err, ErrNotFound) {
				t.Errorf("workspace without a config: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			// The next version continues the migrated ones.
			err = db.Update(func(btx *pstore.Tx) error {
				c := &routingv1.Config{FallbackPoolId: "p3"}
				if err := In(btx, "globex").PutConfig(c); err != nil {
					return err
				}
				if c.GetVersion() != 2 {
					t.Errorf("next version %d, want 2", c.GetVersion())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
