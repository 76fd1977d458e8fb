package store_test

import (
	"reflect"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

func TestSnapshotCodec(t *testing.T) {
	tests := []struct {
		name string
		s    *store.Snapshot
	}{
		{"empty maps", &store.Snapshot{Day: "2026-01-01", Points: map[string]float64{}, Raw: map[uint64]float64{}}},
		{"full", &store.Snapshot{Day: "2026-02-03", Score: 71.25, Band: healthv1.Band_BAND_NEUTRAL, When: "days_since_created() < 30.0",
			Points: map[string]float64{"a": 100, "b": 0.5}, Raw: map[uint64]float64{7: -0.31, 1 << 63: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := store.EncodeSnapshot(tt.s)
			got, err := store.DecodeSnapshot(b)
			if err != nil || !reflect.DeepEqual(got, tt.s) {
				t.Fatalf("round trip: %+v %v, want %+v", got, err, tt.s)
			}
			for i := 0; i < len(b); i++ {
				if _, err := store.DecodeSnapshot(b[:i]); err == nil {
					t.Fatalf("truncated to %d bytes decoded without error", i)
				}
			}
		})
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(store.EncodeSnapshot(&store.Snapshot{Day: "2026-01-01", Score: 5, Points: map[string]float64{"x": 1}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := store.DecodeSnapshot(b)
		if err != nil {
			return
		}
		if _, err := store.DecodeSnapshot(store.EncodeSnapshot(s)); err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
	})
}

func TestMetaCodec(t *testing.T) {
	for _, m := range []*store.Meta{
		{},
		{Stage: "adoption", EnteredAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), DropFrom: healthv1.Band_BAND_HEALTHY,
			LastEval: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
	} {
		b := store.EncodeMeta(m)
		got, err := store.DecodeMeta(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: %+v %v, want %+v", got, err, m)
		}
		for i := 1; i < len(b); i++ {
			if _, err := store.DecodeMeta(b[:i]); err == nil {
				t.Fatalf("truncated to %d bytes decoded without error", i)
			}
		}
	}
}
