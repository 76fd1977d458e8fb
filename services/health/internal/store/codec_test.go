package store_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// TestEncodeSnapshotOf checks that encoding components directly gives the
// bytes of EncodeSnapshot over the maps built from them in order.
func TestEncodeSnapshotOf(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		comps := make([]store.Measured, r.IntN(12))
		s := &store.Snapshot{Day: "2026-03-04", Score: r.Float64() * 100, Band: healthv1.Band(r.IntN(4)), When: []string{"", "young"}[r.IntN(2)],
			Points: map[string]float64{}, Raw: map[uint64]float64{}}
		for j := range comps {
			c := store.Measured{Name: string(rune('a' + r.IntN(8))), Points: float64(r.IntN(101)), Key: uint64(r.IntN(8)) << uint(r.IntN(60)),
				Raw: r.NormFloat64(), HasRaw: r.IntN(5) > 0}
			comps[j] = c
			s.Points[c.Name] = c.Points
			if c.HasRaw {
				s.Raw[c.Key] = c.Raw
			}
		}
		want := store.EncodeSnapshot(s)
		if got := store.EncodeSnapshotOf(s.Day, s.Score, s.Band, s.When, comps); !bytes.Equal(got, want) {
			t.Fatalf("components %+v:\ngot  %x\nwant %x", comps, got, want)
		}
	}
}

func TestSignalRecord(t *testing.T) {
	for _, s := range []*commonv1.Signal{
		{},
		{Workspace: "w", AccountId: "a", SignalId: "a/risk/x", Kind: commonv1.SignalKind_SIGNAL_KIND_RISK, Reason: "x",
			Message: strings.Repeat("long ", 40), State: commonv1.SignalState_SIGNAL_STATE_OPEN,
			OpenedAt: timestamppb.New(time.Unix(1e9, 5)), Attributes: map[string]string{"b": "2", "a": "1", "": ""}},
	} {
		data, err := store.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := store.Marshal(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: s}})
		if err != nil {
			t.Fatal(err)
		}
		if got := store.SignalRecord(data); !bytes.Equal(got, want) {
			t.Fatalf("got %x, want %x", got, want)
		}
	}
}

// randomSnapshot fills every field of a Snapshot from r.
func randomSnapshot(r *rand.Rand) *store.Snapshot {
	strs := []string{"", "a", "usage_breadth", "é✓ unicode", strings.Repeat("long ", 40)}
	s := &store.Snapshot{Day: time.Unix(r.Int64N(4e9), 0).UTC().Format(time.DateOnly), Score: r.NormFloat64() * 100,
		Band: healthv1.Band(r.IntN(5) - 1), When: strs[r.IntN(len(strs))],
		Points: map[string]float64{}, Raw: map[uint64]float64{}}
	for j := r.IntN(12); j > 0; j-- {
		s.Points[strs[r.IntN(len(strs))]+string(rune('a'+r.IntN(8)))] = float64(r.IntN(101))
	}
	for j := r.IntN(12); j > 0; j-- {
		s.Raw[r.Uint64()>>uint(r.IntN(64))] = []float64{0, math.Copysign(0, -1), math.Inf(1), r.NormFloat64() * 1e9}[r.IntN(4)]
	}
	return s
}

// randomMeta fills every field of a Meta from r.
func randomMeta(r *rand.Rand) *store.Meta {
	ts := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		return time.Unix(r.Int64N(8e9)-4e9, r.Int64N(1e9)).UTC()
	}
	return &store.Meta{Stage: []string{"", "adoption", "é✓"}[r.IntN(3)], EnteredAt: ts(),
		DropFrom: healthv1.Band(r.IntN(5) - 1), LastEval: ts()}
}

// TestCodecRoundTrip encodes random snapshots and metas and decodes them
// back; snapshots also match the reference encoding of EncodeSnapshotOf's
// components (see TestEncodeSnapshotOf) and their scores DecodeSnapshotScore.
func TestCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 3000; i++ {
		s := randomSnapshot(r)
		b := store.EncodeSnapshot(s)
		got, err := store.DecodeSnapshot(b)
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("snapshot round trip: %v\ngot  %+v\nwant %+v", err, got, s)
		}
		if score, err := store.DecodeSnapshotScore(b); err != nil || score != s.Score {
			t.Fatalf("snapshot score: %v, %v; want %v", score, err, s.Score)
		}
		m := randomMeta(r)
		gm, err := store.DecodeMeta(store.EncodeMeta(m))
		if err != nil || !reflect.DeepEqual(gm, m) {
			t.Fatalf("meta round trip: %v\ngot  %+v\nwant %+v", err, gm, m)
		}
	}
}

// TestCodecKnowsEveryField fails when Snapshot or Meta gains or loses a
// field that their codecs (snapshotFields, metaFields) do not list.
func TestCodecKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		typ   reflect.Type
		known []string
	}{{reflect.TypeFor[store.Snapshot](), store.SnapshotFields}, {reflect.TypeFor[store.Meta](), store.MetaFields}} {
		var have []string
		for i := 0; i < c.typ.NumField(); i++ {
			have = append(have, c.typ.Field(i).Name)
		}
		slices.Sort(have)
		if want := slices.Sorted(slices.Values(c.known)); !slices.Equal(have, want) {
			t.Errorf("%s has fields %v, its codec knows %v: update codec.go", c.typ, have, want)
		}
	}
}
