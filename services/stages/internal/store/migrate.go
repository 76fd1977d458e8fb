package store

import (
	"encoding/binary"
	"fmt"
	"strings"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The buckets of schema 1 that schema 2 replaced with pkg/store.Versions.
const (
	v1BucketDefs   = "definitions" // Key(ws, journey) + U32(version) -> JourneyDefinition
	v1BucketActive = "active"      // Key(ws, journey) -> U32(version)
)

// Migrations returns the upgrades of older stages files, for
// pkg/store.Options.Migrations.
func Migrations() map[uint32]func(*bbolt.Tx) error {
	return map[uint32]func(*bbolt.Tx) error{2: migrateDefinitions}
}

// migrateDefinitions moves schema 1's journey definitions and active
// versions into pkg/store.Versions, then drops the old buckets. Entries the
// schema 1 readers skipped (malformed keys or values) are skipped here too;
// an id that Versions cannot key (it holds NUL) fails the migration rather
// than losing the definition.
func migrateDefinitions(b *bbolt.Tx) error {
	tx := store.Wrap(b)
	if defs := b.Bucket([]byte(v1BucketDefs)); defs != nil {
		err := defs.ForEach(func(k, v []byte) error {
			if len(k) < 4 {
				return nil
			}
			parts, err := SplitKey(k[:len(k)-4])
			if err != nil || len(parts) != 2 {
				return nil
			}
			if err := checkVersionsID(parts[0], parts[1]); err != nil {
				return err
			}
			def := &stagesv1.JourneyDefinition{}
			if err := proto.Unmarshal(v, def); err != nil {
				return fmt.Errorf("decode journey %q of workspace %q: %w", parts[1], parts[0], err)
			}
			return journeys.Put(tx, parts[0], parts[1], binary.BigEndian.Uint32(k[len(k)-4:]), def)
		})
		if err != nil {
			return fmt.Errorf("migrate journey definitions: %w", err)
		}
		if err := b.DeleteBucket([]byte(v1BucketDefs)); err != nil {
			return fmt.Errorf("migrate journey definitions: %w", err)
		}
	}
	if active := b.Bucket([]byte(v1BucketActive)); active != nil {
		err := active.ForEach(func(k, v []byte) error {
			parts, err := SplitKey(k)
			if err != nil || len(parts) != 2 || len(v) != 4 {
				return nil
			}
			if err := checkVersionsID(parts[0], parts[1]); err != nil {
				return err
			}
			return SetActive(tx, parts[0], parts[1], binary.BigEndian.Uint32(v))
		})
		if err != nil {
			return fmt.Errorf("migrate active journeys: %w", err)
		}
		if err := b.DeleteBucket([]byte(v1BucketActive)); err != nil {
			return fmt.Errorf("migrate active journeys: %w", err)
		}
	}
	return nil
}

// checkVersionsID refuses a workspace or journey id that Versions, which
// joins them with NUL, cannot key.
func checkVersionsID(ws, id string) error {
	if strings.IndexByte(ws, 0) >= 0 || strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("journey %q of workspace %q: id holds NUL", id, ws)
	}
	return nil
}
