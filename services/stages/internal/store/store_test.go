package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func TestKey(t *testing.T) {
	tests := []struct {
		name  string
		parts []string
	}{
		{"plain", []string{"ws", "journey", "acct"}},
		{"separator bytes inside", []string{"a\x00b", "", "c\xff"}},
		{"long", []string{string(make([]byte, 300))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitKey(Key(tt.parts...))
			if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.parts) {
				t.Errorf("SplitKey(Key(%q)) = %q, %v", tt.parts, got, err)
			}
		})
	}
}

func TestDefinitions(t *testing.T) {
	db := storetest.Open(t)
	err := db.Update(func(tx *store.Tx) error {
		for v := uint32(1); v <= 3; v++ {
			if err := PutDefinition(tx, "w", &stagesv1.JourneyDefinition{Id: "j", Version: v, Name: fmt.Sprint("v", v)}); err != nil {
				return err
			}
		}
		if err := PutDefinition(tx, "w", &stagesv1.JourneyDefinition{Id: "j2", Version: 1}); err != nil {
			return err
		}
		return SetActive(tx, "w", "j", 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *store.Tx) error {
		latest, err := LatestVersion(tx, "w", "j")
		if err != nil || latest != 3 {
			t.Errorf("latest = %d, %v; want 3", latest, err)
		}
		def, err := GetDefinition(tx, "w", "j", 0)
		if err != nil || def.GetName() != "v2" {
			t.Errorf("active definition = %v, %v; want v2", def, err)
		}
		if _, err := GetDefinition(tx, "w", "j2", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("inactive journey: err = %v, want ErrNotFound", err)
		}
		if _, err := GetDefinition(tx, "other", "j", 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("other workspace: err = %v, want ErrNotFound", err)
		}
		var got []uint32
		if err := Versions(tx, "w", "j", 0, func(d *stagesv1.JourneyDefinition) (bool, error) {
			got = append(got, d.GetVersion())
			return true, nil
		}); err != nil {
			return err
		}
		if fmt.Sprint(got) != "[3 2 1]" {
			t.Errorf("versions = %v, want [3 2 1]", got)
		}
		got = nil
		if err := Versions(tx, "w", "j", 3, func(d *stagesv1.JourneyDefinition) (bool, error) {
			got = append(got, d.GetVersion())
			return true, nil
		}); err != nil {
			return err
		}
		if fmt.Sprint(got) != "[2 1]" {
			t.Errorf("versions before 3 = %v, want [2 1]", got)
		}
		act, err := ActiveJourneys(tx, "w")
		if err != nil || len(act) != 1 || act[0] != (ActiveJourney{ID: "j", Version: 2}) {
			t.Errorf("active journeys = %v, %v", act, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTimers(t *testing.T) {
	db := storetest.Open(t)
	steps := []struct {
		name  string
		do    func(tx *store.Tx) error
		now   time.Time
		want  string
		fired bool
	}{
		{"arm two", func(tx *store.Tx) error {
			if err := Live.SetTimer(tx, "w", "j", "a", t0.Add(2*time.Hour), 3); err != nil {
				return err
			}
			return Live.SetTimer(tx, "w", "j", "b", t0.Add(time.Hour), 1)
		}, t0.Add(3 * time.Hour), "[b@1 a@3]", false},
		{"re-arm replaces", func(tx *store.Tx) error {
			return Live.SetTimer(tx, "w", "j", "a", t0.Add(5*time.Hour), 3)
		}, t0.Add(3 * time.Hour), "[b@1]", false},
		{"replay namespace separate", func(tx *store.Tx) error {
			return ReplayNamespace("r1").SetTimer(tx, "w", "j", "a", t0, 0)
		}, t0.Add(3 * time.Hour), "[a@0 b@1]", true},
		{"fired are gone", func(tx *store.Tx) error { return nil }, t0.Add(10 * time.Hour), "[a@3]", false},
		{"clear", func(tx *store.Tx) error { return Live.ClearTimer(tx, "w", "j", "a") }, t0.Add(10 * time.Hour), "[]", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := db.Update(func(tx *store.Tx) error {
				if err := s.do(tx); err != nil {
					return err
				}
				due, err := DueTimers(tx, s.now, 10)
				if err != nil {
					return err
				}
				var got []string
				for _, d := range due {
					got = append(got, fmt.Sprintf("%s@%d", d.Account, d.Partition))
					if s.fired {
						if err := Fired(tx, d); err != nil {
							return err
						}
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(s.want) && !(len(got) == 0 && s.want == "[]") {
					t.Errorf("due = %v, want %s", got, s.want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAccountsAndVisits(t *testing.T) {
	db := storetest.Open(t)
	agg := account.New("w", "a")
	agg.Seats = 7
	visits := []*Visit{
		{Stage: "one", Account: "a", Entered: t0, Left: t0.Add(time.Hour), Outcome: OutcomeConverted, Cohort: "2026-03", Segment: "smb"},
		{Stage: "two", Account: "a", Entered: t0.Add(time.Hour), Dropoff: true, DropoffOpen: true, Outcome: OutcomeRemoved, Cohort: "2026-03"},
	}
	err := db.Update(func(tx *store.Tx) error {
		if err := Live.PutAccount(tx, &Account{Journey: &stagesv1.AccountJourney{Workspace: "w", JourneyId: "j", AccountId: "a", Stage: "two"}, Aggs: agg}); err != nil {
			return err
		}
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
		a, err := Live.GetAccount(tx, "w", "j", "a")
		if err != nil {
			return err
		}
		if a.Journey.GetStage() != "two" || a.Aggs.Seats != 7 {
			t.Errorf("account = %v seats %d", a.Journey, a.Aggs.Seats)
		}
		if _, err := ReplayNamespace("r").GetAccount(tx, "w", "j", "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("replay namespace sees live account: %v", err)
		}
		var got []string
		err = Live.Visits(tx, "w", "j", func(v *Visit) error {
			got = append(got, fmt.Sprintf("%s/%s/%v/%d/%v/%v/%s/%s", v.Account, v.Stage, v.Left.IsZero(), v.Outcome, v.Dropoff, v.DropoffOpen, v.Cohort, v.Segment))
			return nil
		})
		want := "[a/one/false/1/false/false/2026-03/smb a/two/true/3/true/true/2026-03/]"
		if fmt.Sprint(got) != want {
			t.Errorf("visits = %v, want %s", got, want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *store.Tx) error {
		if n, err := Live.CopyJourney(tx, ReplayNamespace("r"), "w", "j"); err != nil || n != 1 {
			t.Errorf("copy = %d, %v", n, err)
		}
		return Live.DeleteAccount(tx, "w", "j", "a")
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *store.Tx) error {
		if _, err := Live.GetAccount(tx, "w", "j", "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted account: err = %v", err)
		}
		n := 0
		if err := Live.Visits(tx, "w", "j", func(*Visit) error { n++; return nil }); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("%d visits survive deletion", n)
		}
		if _, err := ReplayNamespace("r").GetAccount(tx, "w", "j", "a"); err != nil {
			t.Errorf("copied account: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
