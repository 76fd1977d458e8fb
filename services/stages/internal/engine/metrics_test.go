package engine

import (
	"errors"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMetricsCountCommittedWorkOnly(t *testing.T) {
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
			err := r.db.Update(func(tx *bbolt.Tx) error {
				if err := r.eng.Apply(tx, 0, recs); err != nil {
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
			if got := testutil.ToFloat64(r.eng.transitions.WithLabelValues("event")); got != tt.want {
				t.Errorf("transitions = %v, want %v", got, tt.want)
			}
		})
	}
}
