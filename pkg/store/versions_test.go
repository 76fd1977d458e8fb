package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

func TestVersions(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "v.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defs := store.NewVersions("journey", func() *structpb.Value { return &structpb.Value{} })
	other := store.NewVersions("model", func() *structpb.Value { return &structpb.Value{} })
	put := func(ws, id string, n int) {
		t.Helper()
		err := db.Update(func(tx *store.Tx) error {
			for i := 0; i < n; i++ {
				v, err := defs.Latest(tx, ws, id)
				if err != nil {
					return err
				}
				if err := defs.Put(tx, ws, id, v+1, structpb.NewStringValue(fmt.Sprintf("%s/%s/v%d", ws, id, v+1))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Neighbouring ids and workspaces must not bleed into each other:
	// "on" is a prefix of "onboarding", "acme" of "acme2".
	put("acme", "on", 2)
	put("acme", "onboarding", 3)
	put("acme2", "on", 1)
	put("acme", "onb", 300) // more than one byte of version

	err = db.View(func(tx *store.Tx) error {
		for _, tc := range []struct {
			ws, id string
			want   uint32
		}{{"acme", "on", 2}, {"acme", "onboarding", 3}, {"acme2", "on", 1}, {"acme", "onb", 300}, {"acme", "o", 0}, {"nobody", "on", 0}} {
			if got, err := defs.Latest(tx, tc.ws, tc.id); err != nil || got != tc.want {
				t.Errorf("Latest(%s, %s) = %d, %v; want %d", tc.ws, tc.id, got, err, tc.want)
			}
			if got, _ := other.Latest(tx, tc.ws, tc.id); got != 0 {
				t.Errorf("another kind sees %s/%s v%d", tc.ws, tc.id, got)
			}
		}
		m, err := defs.Get(tx, "acme", "onboarding", 2)
		if err != nil || m.GetStringValue() != "acme/onboarding/v2" {
			t.Errorf("Get = %v, %v", m, err)
		}
		if _, err := defs.Get(tx, "acme", "onboarding", 4); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get of a missing version: %v, want ErrNotFound", err)
		}
		var seen []uint32
		err = defs.List(tx, "acme", "onboarding", 0, func(v uint32, _ *structpb.Value) (bool, error) { seen = append(seen, v); return true, nil })
		if err != nil || fmt.Sprint(seen) != "[3 2 1]" {
			t.Errorf("List from newest = %v, %v", seen, err)
		}
		seen = nil
		err = defs.List(tx, "acme", "onb", 257, func(v uint32, _ *structpb.Value) (bool, error) { seen = append(seen, v); return len(seen) < 2, nil })
		if err != nil || fmt.Sprint(seen) != "[256 255]" {
			t.Errorf("List before 257, two = %v, %v", seen, err)
		}
		if _, err := defs.Active(tx, "acme", "onboarding"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Active before any activation: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *store.Tx) error {
		if err := defs.Put(tx, "acme", "on", 2, structpb.NewNullValue()); err == nil {
			t.Error("Put over an existing version succeeded")
		}
		if err := defs.SetActive(tx, "acme", "onboarding", "onboarding", 2); err != nil {
			return err
		}
		if err := defs.SetActive(tx, "acme", "on", "on", 1); err != nil {
			return err
		}
		return defs.SetActive(tx, "acme2", "on", "on", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *store.Tx) error {
		p, err := defs.Active(tx, "acme", "onboarding")
		if err != nil || p != (store.Pointer{Slot: "onboarding", ID: "onboarding", Version: 2}) {
			t.Errorf("Active = %+v, %v", p, err)
		}
		all, err := defs.Actives(tx, "acme")
		if err != nil || fmt.Sprint(all) != "[{on on 1} {onboarding onboarding 2}]" {
			t.Errorf("Actives = %v, %v", all, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSameContent(t *testing.T) {
	base := func() *stagesv1.JourneyDefinition {
		return &stagesv1.JourneyDefinition{Id: "j", Name: "Journey", Version: 3, CreatedAt: timestamppb.New(time.Unix(100, 0)),
			Stages: []*stagesv1.Stage{{Id: "trial", Name: "Trial"}}}
	}
	tests := []struct {
		name   string
		change func(*stagesv1.JourneyDefinition)
		want   bool
	}{
		{name: "identical", change: func(*stagesv1.JourneyDefinition) {}, want: true},
		{name: "another version and time", change: func(d *stagesv1.JourneyDefinition) {
			d.Version, d.CreatedAt = 4, timestamppb.New(time.Unix(200, 0))
		}, want: true},
		{name: "no version or time", change: func(d *stagesv1.JourneyDefinition) { d.Version, d.CreatedAt = 0, nil }, want: true},
		{name: "a stage renamed", change: func(d *stagesv1.JourneyDefinition) { d.Stages[0].Name = "Free trial" }, want: false},
		{name: "a name changed", change: func(d *stagesv1.JourneyDefinition) { d.Name = "Other" }, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(b)
			if got := store.SameContent(a, b); got != tc.want {
				t.Errorf("SameContent = %v, want %v", got, tc.want)
			}
			if a.GetVersion() != 3 || a.GetCreatedAt() == nil {
				t.Errorf("SameContent changed its argument: %v", a)
			}
		})
	}
}

// TestVersionsWorkspaces: the workspaces whose slot points at a version,
// in order, and only for that slot and kind.
func TestVersionsWorkspaces(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "v.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defs := store.NewVersions("plays", func() *structpb.Value { return &structpb.Value{} })
	other := store.NewVersions("journey", func() *structpb.Value { return &structpb.Value{} })
	if err := db.View(func(tx *store.Tx) error {
		got, err := defs.Workspaces(tx, "plays")
		if err != nil || len(got) != 0 {
			t.Errorf("empty file: %v, %v", got, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Tx) error {
		for _, a := range []struct{ ws, slot string }{{"zeta", "plays"}, {"acme", "plays"}, {"acme", "other"}, {"beta", "other"}} {
			if err := defs.SetActive(tx, a.ws, a.slot, "p", 1); err != nil {
				return err
			}
		}
		return other.SetActive(tx, "gamma", "plays", "j", 1)
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *store.Tx) error {
		got, err := defs.Workspaces(tx, "plays")
		if err != nil || fmt.Sprint(got) != "[acme zeta]" {
			t.Errorf("Workspaces = %v, %v; want [acme zeta]", got, err)
		}
		return nil
	})
}
