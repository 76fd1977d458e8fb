package store

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

func open(t *testing.T) *store.DB {
	t.Helper()
	db, err := OpenDB(filepath.Join(t.TempDir(), "plays.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestTasksSoonestDueFirstAndByAccount(t *testing.T) {
	db := open(t)
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	tasks := []*playsv1.Task{
		{TaskId: "t_3", AccountId: "a", DueAt: timestamppb.New(t0.Add(3 * time.Hour))},
		{TaskId: "t_10", AccountId: "b", DueAt: timestamppb.New(t0.Add(time.Hour))},
		{TaskId: "t_2", AccountId: "a"}, // no due date: last
		{TaskId: "t_1", AccountId: "ab", DueAt: timestamppb.New(t0.Add(2 * time.Hour))},
	}
	if err := db.Update(func(tx *store.Tx) error {
		for _, k := range tasks {
			if err := In(tx, "w").PutTask(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var order []string
	var second []byte
	if err := db.View(func(tx *store.Tx) error {
		return In(tx, "w").Tasks(nil, func(key []byte, k *playsv1.Task) (bool, error) {
			order = append(order, k.GetTaskId())
			if len(order) == 2 {
				second = append([]byte(nil), key...)
			}
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := order, []string{"t_10", "t_1", "t_3", "t_2"}; !equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	var rest []string
	_ = db.View(func(tx *store.Tx) error {
		return In(tx, "w").Tasks(second, func(_ []byte, k *playsv1.Task) (bool, error) {
			rest = append(rest, k.GetTaskId())
			return true, nil
		})
	})
	if !equal(rest, []string{"t_3", "t_2"}) {
		t.Errorf("after the second key: %v", rest)
	}
	_ = db.View(func(tx *store.Tx) error {
		ks, err := In(tx, "w").AccountTasks("a")
		if err != nil || len(ks) != 2 {
			t.Errorf("AccountTasks(a) = %d tasks, %v; want 2 (not ab's)", len(ks), err)
		}
		return nil
	})
	if err := db.Update(func(tx *store.Tx) error { return In(tx, "w").Forget("a") }); err != nil {
		t.Fatal(err)
	}
	order = nil
	_ = db.View(func(tx *store.Tx) error {
		return In(tx, "w").Tasks(nil, func(_ []byte, k *playsv1.Task) (bool, error) {
			order = append(order, k.GetTaskId())
			return true, nil
		})
	})
	if !equal(order, []string{"t_10", "t_1"}) {
		t.Errorf("after Forget(a): %v", order)
	}
}

func TestTimersFireInOrderOnce(t *testing.T) {
	db := open(t)
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	_ = db.Update(func(tx *store.Tx) error {
		for i, at := range []time.Duration{3, 1, 2} {
			if err := In(tx, "w").AddTimer(t0.Add(at*time.Hour), "t_"+string(rune('a'+i)), TimerOpen); err != nil {
				return err
			}
		}
		return nil
	})
	var due []Timer
	_ = db.Update(func(tx *store.Tx) error {
		var err error
		due, err = DueTimers(tx, t0.Add(2*time.Hour), 10)
		return err
	})
	if len(due) != 2 || due[0].Task != "t_b" || due[1].Task != "t_c" || due[0].Workspace != "w" || due[0].Kind != TimerOpen {
		t.Fatalf("due = %+v, want t_b then t_c", due)
	}
	_ = db.View(func(tx *store.Tx) error {
		next, ok := NextTimer(tx)
		if !ok || !next.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("next timer %v %t, want the 3h one", next, ok)
		}
		return nil
	})
	_ = db.Update(func(tx *store.Tx) error {
		again, _ := DueTimers(tx, t0.Add(2*time.Hour), 10)
		if len(again) != 0 {
			t.Errorf("timers fired twice: %+v", again)
		}
		return nil
	})
}

func TestPendingIndexFollowsState(t *testing.T) {
	db := open(t)
	d := &playsv1.Delivery{DeliveryId: "msg_1", State: playsv1.DeliveryState_DELIVERY_STATE_PENDING}
	_ = db.Update(func(tx *store.Tx) error { return In(tx, "w").AddDelivery(1, d) })
	count := func() int {
		n := 0
		_ = db.View(func(tx *store.Tx) error {
			return Pending(tx, func(string, *playsv1.Delivery) error { n++; return nil })
		})
		return n
	}
	if count() != 1 {
		t.Fatalf("pending = %d, want 1", count())
	}
	d.State = playsv1.DeliveryState_DELIVERY_STATE_DELIVERED
	_ = db.Update(func(tx *store.Tx) error { return In(tx, "w").PutDelivery(d) })
	if count() != 0 {
		t.Errorf("pending = %d after delivery, want 0", count())
	}
}

func TestCooldown(t *testing.T) {
	db := open(t)
	until := time.Date(2031, 1, 8, 0, 0, 0, 0, time.UTC)
	_ = db.Update(func(tx *store.Tx) error { return In(tx, "w").SetCooldown("p", "a", until) })
	_ = db.View(func(tx *store.Tx) error {
		got, err := In(tx, "w").Cooldown("p", "a")
		if err != nil || !got.Equal(until) {
			t.Errorf("Cooldown = %v, %v; want %v", got, err, until)
		}
		if got, _ := In(tx, "w").Cooldown("p", "ab"); !got.IsZero() {
			t.Errorf("another account held: %v", got)
		}
		if got, _ := In(tx, "other").Cooldown("p", "a"); !got.IsZero() {
			t.Errorf("another workspace held: %v", got)
		}
		return nil
	})
}

// TestForgetFacts: forgetting an account erases its row, the assignments
// that name it and its cooldowns, and nothing of an account whose id it
// prefixes ("a" and "ab").
func TestForgetFacts(t *testing.T) {
	db := open(t)
	until := time.Date(2031, 1, 8, 0, 0, 0, 0, time.UTC)
	if err := db.Update(func(tx *store.Tx) error {
		w := In(tx, "w")
		for _, acc := range []string{"a", "ab"} {
			if _, err := w.Account(acc); err != nil {
				return err
			}
			for _, p := range []string{"p", "q"} {
				if err := w.SetCooldown(p, acc, until); err != nil {
					return err
				}
			}
			if err := w.PutAssignment("as_"+acc, &Assignment{Account: acc, Type: "pql", Owner: "sam"}); err != nil {
				return err
			}
		}
		return w.Forget("a")
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *store.Tx) error {
		w := In(tx, "w")
		for _, tc := range []struct {
			account string
			kept    bool
		}{{"a", false}, {"ab", true}} {
			for _, p := range []string{"p", "q"} {
				got, err := w.Cooldown(p, tc.account)
				if err != nil || got.IsZero() == tc.kept {
					t.Errorf("Cooldown(%s, %s) = %v, %v; kept want %v", p, tc.account, got, err, tc.kept)
				}
			}
			_, ok, err := w.Assignment("as_" + tc.account)
			if err != nil || ok != tc.kept {
				t.Errorf("Assignment(as_%s) found %v, %v; want %v", tc.account, ok, err, tc.kept)
			}
		}
		return nil
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
