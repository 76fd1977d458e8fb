package store

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

// TestVisitCodecKnowsEveryField fails when Visit gains a field that the
// hand-written codec does not store: add it to the codec (keeping the bytes
// of existing visits readable) and to visitFields.
func TestVisitCodecKnowsEveryField(t *testing.T) {
	var have []string
	typ := reflect.TypeFor[Visit]()
	for i := range typ.NumField() {
		have = append(have, typ.Field(i).Name)
	}
	if !slices.Equal(have, visitFields) {
		t.Fatalf("Visit fields = %v, the codec stores %v", have, visitFields)
	}
}

func randString(r *rand.Rand) string {
	const chars = "abcxyz-_09\x00\xff"
	b := make([]byte, r.Intn(12))
	for i := range b {
		b[i] = chars[r.Intn(len(chars))]
	}
	return string(b)
}

func randVisit(r *rand.Rand) *Visit {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func() time.Time { return base.Add(time.Duration(r.Int63n(int64(20 * 365 * 24 * time.Hour)))) }
	v := &Visit{
		Stage: randString(r), Account: randString(r), Entered: at(),
		Outcome: Outcome(r.Intn(int(OutcomeChurned) + 1)), Dropoff: r.Intn(2) == 0, DropoffOpen: r.Intn(2) == 0,
		Cohort: randString(r), Segment: randString(r), Placed: r.Intn(2) == 0, Plan: randString(r),
	}
	if r.Intn(3) > 0 {
		v.Left = at()
	}
	return v
}

// TestVisitRoundTrip stores seeded random visits, every field filled, and
// reads them back through both readers (GetVisit and Visits): the codec has
// no protobuf reference, so the reference is the Visit itself.
func TestVisitRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	db := storetest.Open(t)
	want := map[string]Visit{}
	var visits []*Visit
	for range 500 {
		v := randVisit(r)
		visits = append(visits, v)
		want[fmt.Sprintf("%q/%d/%q", v.Account, v.Entered.UnixNano(), v.Stage)] = *v
	}
	err := db.Update(func(tx *store.Tx) error {
		for _, v := range visits {
			if err := Live.PutVisit(tx, "w", "j", v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *store.Tx) error {
		for _, v := range visits {
			w := want[fmt.Sprintf("%q/%d/%q", v.Account, v.Entered.UnixNano(), v.Stage)]
			got, err := Live.GetVisit(tx, "w", "j", v.Account, v.Stage, v.Entered)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(*got, w) {
				t.Errorf("GetVisit = %+v, want %+v", *got, w)
			}
		}
		n := 0
		err := Live.Visits(tx, "w", "j", func(v *Visit) error {
			n++
			w, ok := want[fmt.Sprintf("%q/%d/%q", v.Account, v.Entered.UnixNano(), v.Stage)]
			if !ok || !reflect.DeepEqual(*v, w) {
				t.Errorf("Visits gave %+v, want %+v", *v, w)
			}
			return nil
		})
		if n != len(want) {
			t.Errorf("Visits gave %d visits, want %d", n, len(want))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzUnmarshalVisit checks that no stored bytes make the decoder panic,
// and that what it accepts re-encodes to the same visit.
func FuzzUnmarshalVisit(f *testing.F) {
	r := rand.New(rand.NewSource(2))
	for range 8 {
		f.Add(randVisit(r).marshal())
	}
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Visit
		if err := unmarshalVisit(b, &v); err != nil {
			if !strings.Contains(err.Error(), "decode visit") {
				t.Fatalf("error %v does not say what failed", err)
			}
			return
		}
		var again Visit
		if err := unmarshalVisit(v.marshal(), &again); err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", v, again, err)
		}
	})
}

// TestVisitWithoutPlan: a visit stored before visits had a plan (the bytes
// end after the segment) decodes with no plan, and a visit without a plan
// is still stored in those bytes.
func TestVisitWithoutPlan(t *testing.T) {
	old := []byte{0x00, byte(OutcomeOpen), 7}
	old = append(old, "2026-03"...)
	old = append(old, 3)
	old = append(old, "smb"...)
	for _, tc := range []struct {
		name string
		b    []byte
		want Visit
	}{
		{"old bytes", old, Visit{Cohort: "2026-03", Segment: "smb"}},
		{"with a plan", append(append(slices.Clone(old), 4), "team"...), Visit{Cohort: "2026-03", Segment: "smb", Plan: "team"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Visit{Plan: "stale"}
			if err := unmarshalVisit(tc.b, &v); err != nil || !reflect.DeepEqual(v, tc.want) {
				t.Fatalf("decoded %+v, %v; want %+v", v, err, tc.want)
			}
			if got := v.marshal(); string(got) != string(tc.b) {
				t.Errorf("re-encoded %x, want %x", got, tc.b)
			}
		})
	}
}
