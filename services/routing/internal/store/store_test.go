package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

func TestAssignmentsIndexesAndLoad(t *testing.T) {
	db := storetest.Open(t)
	open := routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	err := db.Update(func(btx *pstore.Tx) error {
		tx := In(btx, "ws1")
		for i := range 7 {
			id, err := tx.NextAssignmentID()
			if err != nil {
				return err
			}
			a := &routingv1.Assignment{
				Workspace: "ws1", AssignmentId: id, State: open,
				OwnerId:   fmt.Sprintf("o%d", i%2),
				Type:      routingv1.HandoffType(1 + i%3),
				AccountId: fmt.Sprintf("acc%d", i%3),
				Lead:      &routingv1.Lead{Email: fmt.Sprintf("Lead%d@Acme.com", i%2)},
			}
			if err := tx.PutAssignment(a); err != nil {
				return err
			}
		}
		// Move the first assignment to o1 and close it.
		a, err := tx.Assignment("as_000000000001")
		if err != nil {
			return err
		}
		a.OwnerId, a.State = "o1", routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED
		return tx.PutAssignment(a)
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter Filter
		want   int
	}{
		{"all", Filter{}, 7},
		{"by owner", Filter{OwnerID: "o1"}, 4},
		{"by state", Filter{State: open}, 6},
		{"by type", Filter{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL}, 3},
		{"by account and owner", Filter{AccountID: "acc0", OwnerID: "o1"}, 2},
		{"closed", Filter{State: routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Page two at a time to exercise the page key.
			var got int
			p := Page{Size: 2}
			for {
				var (
					items []*routingv1.Assignment
					more  bool
				)
				err := db.View(func(btx *pstore.Tx) error {
					var err error
					items, p.After, more, err = In(btx, "ws1").ListAssignments(tt.filter, p)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				got += len(items)
				if !more {
					break
				}
			}
			if got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
	_ = db.View(func(btx *pstore.Tx) error {
		tx := In(btx, "ws1")
		if o, _ := tx.Load("o0"); o != 3 {
			t.Errorf("o0 open load %d, want 3", o)
		}
		if o, _ := tx.Load("o1"); o != 3 {
			t.Errorf("o1 open load %d, want 3 (one closed)", o)
		}
		ids, err := tx.AssignmentsByEmail("lead1@acme.com")
		if err != nil || len(ids) != 3 {
			t.Errorf("by email %v %v, want 3", ids, err)
		}
		if _, err := In(btx, "other").Assignment("as_000000000001"); !errors.Is(err, ErrNotFound) {
			t.Errorf("other workspace sees assignment: %v", err)
		}
		return nil
	})
}

func TestTimers(t *testing.T) {
	db := storetest.Open(t)
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	err := db.Update(func(btx *pstore.Tx) error {
		tx := In(btx, "ws")
		for i, id := range []string{"c", "a", "b"} {
			if err := tx.Arm(id, base.Add(time.Duration(i)*time.Hour), "warning_50"); err != nil {
				return err
			}
		}
		// Re-arming replaces: "c" moves from 09:00 to 12:00.
		return tx.Arm("c", base.Add(3*time.Hour), "breach")
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		now  time.Time
		want string
	}{
		{"none yet", base.Add(-time.Second), ""},
		{"first", base.Add(time.Hour), "a"},
		{"two", base.Add(2 * time.Hour), "ab"},
		{"all in order", base.Add(5 * time.Hour), "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = db.View(func(btx *pstore.Tx) error {
				ts, err := DueTimers(btx, tt.now, 10)
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				for _, tm := range ts {
					got += tm.AssignmentID
					if tm.Workspace != "ws" {
						t.Errorf("workspace %q", tm.Workspace)
					}
				}
				if got != tt.want {
					t.Fatalf("due %q, want %q", got, tt.want)
				}
				return nil
			})
		})
	}
	err = db.Update(func(btx *pstore.Tx) error {
		ts, err := DueTimers(btx, base.Add(5*time.Hour), 10)
		if err != nil {
			return err
		}
		for _, tm := range ts {
			if err := In(btx, tm.Workspace).DeleteTimer(tm); err != nil {
				return err
			}
		}
		if n := PendingTimers(btx); n != 0 {
			t.Errorf("%d timers left", n)
		}
		if _, ok := NextTimer(btx); ok {
			t.Error("NextTimer found one after deleting all")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfigVersions(t *testing.T) {
	db := storetest.Open(t)
	err := db.Update(func(btx *pstore.Tx) error {
		tx := In(btx, "ws")
		if _, err := tx.Config(); !errors.Is(err, ErrNotFound) {
			t.Errorf("empty config: %v", err)
		}
		for i := range 3 {
			c := &routingv1.Config{FallbackPoolId: fmt.Sprint(i)}
			if err := tx.PutConfig(c); err != nil {
				return err
			}
			if c.GetVersion() != uint32(i+1) {
				t.Errorf("version %d, want %d", c.GetVersion(), i+1)
			}
		}
		c, err := tx.Config()
		if err != nil || c.GetFallbackPoolId() != "2" {
			t.Errorf("active %v %v", c, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAggregates round-trips an account's product aggregates per workspace
// and rejects corrupt bytes with an error instead of a panic.
func TestAggregates(t *testing.T) {
	db := storetest.Open(t)
	err := db.Update(func(btx *pstore.Tx) error {
		tx := In(btx, "ws1")
		a, err := tx.Aggregates("acme")
		if err != nil {
			return err
		}
		if len(a.Days) != 0 || a.AccountID != "acme" {
			return fmt.Errorf("fresh aggregates: %+v", a)
		}
		a.Seats = 12
		if err := tx.PutAggregates("acme", a); err != nil {
			return err
		}
		if got, err := tx.Aggregates("acme"); err != nil || got.Seats != 12 {
			return fmt.Errorf("read back: %v %v", got, err)
		}
		if got, err := In(btx, "ws2").Aggregates("acme"); err != nil || got.Seats != 0 {
			return fmt.Errorf("other workspace sees %v %v", got, err)
		}
		if err := tx.put("aggregates", []byte("bad"), []byte{0xff, 0x01}); err != nil {
			return err
		}
		if _, err := tx.Aggregates("bad"); err == nil {
			return errors.New("corrupt aggregates decoded without error")
		}
		if err := tx.DeleteAggregates("acme"); err != nil {
			return err
		}
		if got, err := tx.Aggregates("acme"); err != nil || got.Seats != 0 {
			return fmt.Errorf("after delete: %v %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdateAssignmentDeferredLoad moves an assignment between owners and
// states with load counters deferred: reads through the Tx see the new
// counts before FlushLoad, the file sees them after, and the owner and
// state indexes follow.
func TestUpdateAssignmentDeferredLoad(t *testing.T) {
	db := storetest.Open(t)
	open := routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	breached := routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
	err := db.Update(func(btx *pstore.Tx) error {
		tx := In(btx, "ws")
		a := &routingv1.Assignment{AssignmentId: "a1", OwnerId: "alice", State: open, Type: routingv1.HandoffType_HANDOFF_TYPE_MQL}
		if err := tx.PutAssignment(a); err != nil {
			return err
		}
		tx.DeferLoad()
		a.OwnerId, a.State = "bob", breached
		if _, err := tx.UpdateAssignment(a, "alice", open); err != nil {
			return err
		}
		if o, b := tx.Load("bob"); o != 1 || b != 1 {
			return fmt.Errorf("bob before flush: open %d breached %d", o, b)
		}
		if o, _ := In(btx, "ws").Load("alice"); o != 1 {
			return fmt.Errorf("stored alice before flush: open %d, want the old 1", o)
		}
		if err := tx.FlushLoad(); err != nil {
			return err
		}
		fresh := In(btx, "ws")
		if o, b := fresh.Load("alice"); o != 0 || b != 0 {
			return fmt.Errorf("alice after flush: %d/%d", o, b)
		}
		if o, b := fresh.Load("bob"); o != 1 || b != 1 {
			return fmt.Errorf("bob after flush: %d/%d", o, b)
		}
		for _, f := range []Filter{{OwnerID: "bob"}, {State: breached}} {
			got, _, _, err := fresh.ListAssignments(f, Page{Size: 10})
			if err != nil {
				return err
			}
			if len(got) != 1 || got[0].GetOwnerId() != "bob" {
				return fmt.Errorf("list %+v: %v", f, got)
			}
		}
		for _, f := range []Filter{{OwnerID: "alice"}, {State: open}} {
			got, _, _, err := fresh.ListAssignments(f, Page{Size: 10})
			if err != nil {
				return err
			}
			if len(got) != 0 {
				return fmt.Errorf("list %+v after move: %v", f, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStateName checks the cached index values against the enum's String,
// including a value the enum does not name.
func TestStateName(t *testing.T) {
	for v := range routingv1.AssignmentState_name {
		if s := routingv1.AssignmentState(v); stateName(s) != s.String() {
			t.Errorf("stateName(%d) = %q, want %q", v, stateName(s), s.String())
		}
	}
	if s := routingv1.AssignmentState(99); stateName(s) != "99" {
		t.Errorf("stateName(99) = %q", stateName(s))
	}
}
