// Package storetest opens throwaway stores for tests.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/pkg/store"
)

// Open opens a store in t.TempDir() without fsync and closes it when the test ends.
func Open(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "test.db"), store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	return db
}
