// Package storedump renders a whole bbolt file as text, so that tests
// outside the store can compare two stores byte for byte without reaching
// into bbolt themselves.
package storedump

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
)

// String renders every key of every bucket of db, one "path/"key"=hexvalue"
// line each in key order, nested buckets as path elements; the top-level
// buckets named in skip are left out.
func String(t testing.TB, db *kv.DB, skip ...string) string {
	t.Helper()
	var buf strings.Builder
	var walk func(prefix string, b *bbolt.Bucket) error
	walk = func(prefix string, b *bbolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+"/"+string(k), b.Bucket(k))
			}
			fmt.Fprintf(&buf, "%s/%q=%x\n", prefix, k, v)
			return nil
		})
	}
	if err := db.View(func(tx *kv.Tx) error {
		return tx.Bolt().ForEach(func(name []byte, b *bbolt.Bucket) error {
			if slices.Contains(skip, string(name)) {
				return nil
			}
			return walk(string(name), b)
		})
	}); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
