package store

import (
	"bytes"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

// SchemaVersion is the routing file's schema version.
//
//  1. the layout of this package's doc comment, with config versions in
//     ws/<workspace>/configs
//  2. config versions in pkg/store.Versions (kind "config")
//  3. CRM touches in ws/<workspace>/touches, one key each, instead of the
//     64 newest in each Account
const SchemaVersion = 3

// OpenDB opens (creating or migrating) the routing file at path. opts'
// SchemaVersion and Migrations are routing's own.
func OpenDB(path string, opts store.Options) (*store.DB, error) {
	opts.SchemaVersion = SchemaVersion
	opts.Migrations = map[uint32]func(*bbolt.Tx) error{2: migrateConfigs, 3: migrateTouches}
	return store.Open(path, opts)
}

// migrateConfigs moves every workspace's config versions from
// ws/<workspace>/configs (keyed by the version, 8 bytes big-endian) to the
// Versions store, the latest one active, and drops the old buckets. The
// versions keep their numbers, so the next ApplyConfig continues them.
func migrateConfigs(btx *bbolt.Tx) error {
	root, workspaces, err := wsBuckets(btx)
	if root == nil || err != nil {
		return err
	}
	tx := store.Wrap(btx)
	for _, ws := range workspaces {
		wb := root.Bucket([]byte(ws))
		old := wb.Bucket([]byte("configs"))
		if old == nil {
			continue
		}
		t := In(tx, ws)
		err := old.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("config key %x: not a version", k)
			}
			cfg := &routingv1.Config{}
			if err := unmarshal(v, cfg); err != nil {
				return err
			}
			version := store.ParseU64(k)
			if version == 0 || version > 1<<32-1 {
				return fmt.Errorf("config key %x: version out of range", k)
			}
			// The stored message carries its version; the key is the truth.
			cfg.Version = uint32(version)
			// Keys ascend, so the last one put is the latest, and active.
			return t.putConfigVersion(cfg)
		})
		if err != nil {
			return fmt.Errorf("migrate configs of workspace %q: %w", ws, err)
		}
		if err := wb.DeleteBucket([]byte("configs")); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
			return fmt.Errorf("drop configs of workspace %q: %w", ws, err)
		}
	}
	return nil
}

// migrateTouches moves every account's recent touches (Account.Touches,
// schema 2) to the touches bucket and rewrites the account without them.
func migrateTouches(btx *bbolt.Tx) error {
	root, workspaces, err := wsBuckets(btx)
	if root == nil || err != nil {
		return err
	}
	tx := store.Wrap(btx)
	for _, ws := range workspaces {
		accounts := root.Bucket([]byte(ws)).Bucket([]byte("accounts"))
		if accounts == nil {
			continue
		}
		var ids []string
		if err := accounts.ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(`"touches"`)) {
				ids = append(ids, string(k))
			}
			return nil
		}); err != nil {
			return err
		}
		t := In(tx, ws)
		for _, id := range ids {
			a, err := t.Account(id)
			if err != nil {
				return fmt.Errorf("migrate touches of workspace %q: %w", ws, err)
			}
			for _, tc := range a.Touches {
				if err := t.AddTouch(id, tc.At, tc.Kind); err != nil {
					return fmt.Errorf("migrate touches of workspace %q: %w", ws, err)
				}
			}
			a.Touches = nil
			if err := t.PutAccount(id, a); err != nil {
				return fmt.Errorf("migrate touches of workspace %q: %w", ws, err)
			}
		}
	}
	return nil
}

// wsBuckets returns the ws bucket (nil in a file without one) and the
// names of the workspaces under it, for migrations that visit each.
func wsBuckets(btx *bbolt.Tx) (*bbolt.Bucket, []string, error) {
	root := btx.Bucket([]byte("ws"))
	if root == nil {
		return nil, nil, nil
	}
	var workspaces []string
	err := root.ForEachBucket(func(k []byte) error {
		workspaces = append(workspaces, string(k))
		return nil
	})
	return root, workspaces, err
}
