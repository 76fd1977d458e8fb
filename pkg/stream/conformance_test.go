package stream_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/conformance"
)

// TestConformance runs the backend conformance suite against the bbolt Log
// (pkg/stream/jetlog runs the same suite against JetStream).
func TestConformance(t *testing.T) {
	type open struct {
		db    *store.DB
		clock *clock.Manual
	}
	dirs := map[string]string{}
	opened := map[stream.Backend]open{}
	conformance.Run(t, conformance.Harness{
		Open: func(t *testing.T, name string, partitions uint32, retention bool) stream.Backend {
			key := t.Name() + "/" + name
			if dirs[key] == "" {
				dirs[key] = t.TempDir()
			}
			db, err := store.Open(filepath.Join(dirs[key], "log.db"), store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			opts := stream.LogOptions{Partitions: partitions, Clock: clk}
			if retention {
				opts.Retention = time.Hour
			}
			l, err := stream.OpenLog(db, name, opts)
			if err != nil {
				t.Fatal(err)
			}
			opened[l] = open{db, clk}
			t.Cleanup(func() { _ = db.Close() })
			return l
		},
		Close: func(t *testing.T, b stream.Backend) {
			if err := opened[b].db.Close(); err != nil {
				t.Fatal(err)
			}
		},
		Compact: func(t *testing.T, b stream.Backend) {
			opened[b].clock.Advance(2 * time.Hour)
			if _, err := b.(*stream.Log).ApplyRetention(context.Background(), 0); err != nil {
				t.Fatal(err)
			}
		},
	})
}
