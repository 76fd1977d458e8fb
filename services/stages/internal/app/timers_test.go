package app

import (
	"context"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func onboardingEvents() []*ingestionv1.Event {
	traits, _ := structpb.NewStruct(map[string]any{"created_at": start.Format(time.RFC3339)})
	ev := func(name string, at time.Time) *ingestionv1.Event {
		return &ingestionv1.Event{Workspace: "w", AccountId: "o1", UserId: "u1", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: name, Timestamp: timestamppb.New(at)}
	}
	return []*ingestionv1.Event{
		{Workspace: "w", AccountId: "o1", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, Traits: traits, Timestamp: timestamppb.New(start)},
		ev("contract_signed", start),
		ev("setup_completed", start.Add(24*time.Hour)),
	}
}

func openSignals(t *testing.T, r *rig) string {
	t.Helper()
	var reasons []string
	for _, s := range r.account("w", "default", "o1").Journey.GetOpenSignals() {
		reasons = append(reasons, s.GetReason())
	}
	return strings.Join(reasons, ",")
}

// TestTimerLoopFiresWithoutEvents drives RunTimers with a manual clock: the
// 14-day activation deadline fires on day 14 although the account sends nothing.
func TestTimerLoopFiresWithoutEvents(t *testing.T) {
	clk := clock.NewManual(start)
	r := newRig(t, storetest.Open(t), clk)
	r.apply(onboardingEvents()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.app.RunTimers(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := start.Add(14 * 24 * time.Hour)
	for clk.Now().Before(deadline) {
		waitForWaiter(t, clk)
		if got := openSignals(t, r); got != "" {
			t.Fatalf("signal %q open before day 14 (now %v)", got, clk.Now())
		}
		clk.Set(clk.Now().Add(12 * time.Hour))
	}
	waitFor(t, func() bool { return openSignals(t, r) == "onboarding.no_activation_14d" })
}

// TestTimersDueWhileDownFireOnStart checks that timers are durable: a new
// App over the same file fires what fell due while nothing ran, each at
// its own due time.
func TestTimersDueWhileDownFireOnStart(t *testing.T) {
	db := storetest.Open(t)
	r := newRig(t, db, clock.NewManual(start))
	r.apply(onboardingEvents()...)

	later := clock.NewManual(start.Add(20 * 24 * time.Hour))
	r2 := newRig(t, db, later)
	n, err := r2.app.FireDue(context.Background(), later.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n < 14 {
		t.Errorf("fired %d timers, want the daily checks of 20 days", n)
	}
	if got := openSignals(t, r2); got != "onboarding.no_activation_14d" {
		t.Fatalf("open signals = %q", got)
	}
	sig := r2.account("w", "default", "o1").Journey.GetOpenSignals()[0]
	if want := start.Add(14 * 24 * time.Hour); !sig.GetOpenedAt().AsTime().Equal(want) {
		t.Errorf("signal opened at %v, want the due time %v", sig.GetOpenedAt().AsTime(), want)
	}
	err = db.View(func(tx *pstore.Tx) error {
		next, ok := store.NextDue(tx)
		if !ok || !next.After(later.Now()) {
			t.Errorf("next timer = %v, %v; want re-armed after %v", next, ok, later.Now())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTombstones(t *testing.T) {
	r := newRig(t, storetest.Open(t), clock.NewManual(start))
	r.apply(onboardingEvents()...)
	r.apply(&ingestionv1.Event{Workspace: "w", AccountId: "o2", UserId: "u1", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "demo_requested", Timestamp: timestamppb.New(start)})
	apply := func(ts *commonv1.Tombstone) {
		t.Helper()
		err := r.db.Update(func(tx *pstore.Tx) error {
			return r.app.Apply(tx, 0, []*ingestionv1.LogRecord{{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: ts}}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	apply(&commonv1.Tombstone{Workspace: "w", UserId: "u1"})
	if _, ok := r.account("w", "default", "o2").Aggs.Users["u1"]; ok {
		t.Error("user u1 survives a user tombstone")
	}
	apply(&commonv1.Tombstone{Workspace: "w", AccountId: "o1"})
	err := r.db.View(func(tx *pstore.Tx) error {
		if _, err := store.Live.GetAccount(tx, "w", "default", "o1"); err == nil {
			t.Error("account o1 survives an account tombstone")
		}
		n := 0
		if err := store.Live.Visits(tx, "w", "default", func(v *store.Visit) error {
			if v.Account == "o1" {
				n++
			}
			return nil
		}); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("%d visits of o1 survive", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := r.published()
	if got := pub["o1"]; len(got) == 0 || got[len(got)-1] != "x" {
		t.Errorf("o1 published %v, want a forwarded tombstone last", got)
	}
	if got := pub[""]; len(got) != 1 || got[0] != "x" {
		t.Errorf("user tombstone published %v, want one forwarded tombstone", got)
	}
}

// waitForWaiter blocks until the timer loop waits on the manual clock.
func waitForWaiter(t *testing.T, clk *clock.Manual) {
	t.Helper()
	waitFor(t, func() bool { return clk.Waiters() > 0 })
}

// waitFor polls a condition the timer goroutine makes true; it waits for
// progress of that goroutine, never for a deadline of the code under test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestActivatingVersionWithoutStageRetiresIt switches versions without a
// replay: an account whose stage vanished has its stay and signals closed
// and is placed afresh on its next event.
func TestActivatingVersionWithoutStageRetiresIt(t *testing.T) {
	r := newRig(t, storetest.Open(t), clock.NewManual(start))
	r.apply(onboardingEvents()...)
	if _, err := r.app.FireDue(context.Background(), start.Add(15*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := openSignals(t, r); got != "onboarding.no_activation_14d" {
		t.Fatalf("open signals = %q", got)
	}
	def := `id: default
stages:
  - id: customer
    entry: [{name: signed, expr: 'has_event("contract_signed")'}]
`
	p, errs := journey.ProtoFromYAML([]byte(def))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p.Version = 2
	err := r.db.Update(func(tx *pstore.Tx) error {
		if err := store.PutDefinition(tx, "w", p); err != nil {
			return err
		}
		return store.SetActive(tx, "w", "default", 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	r.apply(&ingestionv1.Event{Workspace: "w", AccountId: "o1", UserId: "u1", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "login", Timestamp: timestamppb.New(start.Add(16 * 24 * time.Hour))})
	a := r.account("w", "default", "o1")
	if a.Journey.GetStage() != "customer" || a.Journey.GetVersion() != 2 || len(a.Journey.GetOpenSignals()) != 0 {
		t.Fatalf("after switch: stage %q v%d open %v", a.Journey.GetStage(), a.Journey.GetVersion(), a.Journey.GetOpenSignals())
	}
	err = r.db.View(func(tx *pstore.Tx) error {
		return store.Live.Visits(tx, "w", "default", func(v *store.Visit) error {
			if v.Stage == "onboarding" && v.Outcome != store.OutcomeRemoved {
				t.Errorf("onboarding visit outcome = %d, want removed", v.Outcome)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.published()["o1"]; strings.Join(got, " ") != ">onboarding +onboarding.no_activation_14d -onboarding.no_activation_14d >customer" {
		t.Errorf("published %v", got)
	}
}
