package app

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRollbackLeavesNoTrace(t *testing.T) {
	r := newRig(t, storetest.Open(t), clock.NewManual(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)))
	recs := []*ingestionv1.LogRecord{{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
		Workspace: "w", AccountId: "a", UserId: "u", Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
		Event: "demo_requested", Timestamp: timestamppb.New(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)),
	}}}}
	errRollback := errors.New("rollback")
	tests := []struct {
		name     string
		rollback bool
		want     float64
	}{
		{"rolled back transaction counts nothing", true, 0},
		{"committed transaction counts its transition", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.db.Update(func(tx *pstore.Tx) error {
				if err := r.app.Apply(tx, 0, recs); err != nil {
					return err
				}
				if tt.rollback {
					return errRollback
				}
				return nil
			})
			if err != nil && !errors.Is(err, errRollback) {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(r.app.transitions.WithLabelValues("event")); got != tt.want {
				t.Errorf("transitions = %v, want %v", got, tt.want)
			}
			// The state cache must not keep what a rolled-back transaction did.
			if !tt.rollback {
				a := r.account("w", "default", "a")
				if n := a.Aggs.Count("demo_requested", 1, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)); n != 1 {
					t.Errorf("demo_requested counted %d times, want 1", n)
				}
			}
		})
	}
}

// TestCachedStateMatchesStore applies events in many transactions, as the
// consumer does, and checks the cached state equals a fresh decode.
func TestCachedStateMatchesStore(t *testing.T) {
	r := newRig(t, storetest.Open(t), clock.NewManual(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)))
	evs := history(5, 30)
	for i := 0; i < len(evs); i += 7 {
		r.apply(evs[i:min(i+7, len(evs))]...)
	}
	for a := 0; a < 5; a++ {
		acct := fmt.Sprintf("acct-%03d", a)
		stored := r.account("w", "default", acct)
		ce := r.app.cache.take(string(store.Key("w", "default", acct)))
		if ce == nil {
			t.Fatalf("%s not cached", acct)
		}
		if !proto.Equal(ce.acc.Journey, stored.Journey) || !bytes.Equal(ce.acc.Aggs.Marshal(), stored.Aggs.Marshal()) {
			t.Errorf("%s: cached state differs from the store", acct)
		}
	}
}
