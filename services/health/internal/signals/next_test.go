package signals_test

import (
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"

	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
)

// TestNextChange checks each time rule's moment, and that Evaluate's answer
// indeed changes there (and not just before).
func TestNextChange(t *testing.T) {
	created := t0.Add(3 * time.Hour)
	base := func() *account.Aggregates {
		a := account.New("w", "a")
		a.CreatedAt, a.FirstEventAt = created.Unix(), created.Unix()
		return a
	}
	for _, tc := range []struct {
		name   string
		agg    func() *account.Aggregates
		now    time.Time
		want   time.Time
		reason string // the signal that flips at want ("" to skip the check)
	}{
		{"nothing but midnight", base, created.AddDate(0, 0, 40), t0.AddDate(0, 0, 41), ""},
		{"30 days as a customer", base, created.AddDate(0, 0, 30).Add(-time.Hour), created.AddDate(0, 0, 30), signals.SingleActiveUser},
		{"renewal window opens", func() *account.Aggregates {
			a := base()
			a.ContractEnd = created.AddDate(0, 0, 160).Add(2 * time.Hour).Unix()
			return a
		}, created.AddDate(0, 0, 40).Add(time.Hour), created.AddDate(0, 0, 40).Add(2 * time.Hour), signals.RenewalReason(120)},
		{"renewal window closes", func() *account.Aggregates {
			a := base()
			a.ContractEnd = created.AddDate(0, 0, 60).Add(2 * time.Hour).Unix()
			return a
		}, created.AddDate(0, 0, 60).Add(time.Hour), created.AddDate(0, 0, 60).Add(2*time.Hour + time.Second), signals.RenewalReason(30)},
		{"P1 turns 7 days old", func() *account.Aggregates {
			a := base()
			a.Tickets["T1"] = account.Ticket{Priority: "p1", OpenedAt: created.AddDate(0, 0, 40).Unix()}
			return a
		}, created.AddDate(0, 0, 47).Add(-time.Minute), created.AddDate(0, 0, 47).Add(time.Second), signals.P1TicketAging},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.agg()
			got := signals.NextChange(signals.Facts{Agg: a, Now: tc.now})
			if !got.Equal(tc.want) {
				t.Fatalf("NextChange = %v, want %v", got, tc.want)
			}
			if tc.reason == "" {
				return
			}
			holds := func(at time.Time) bool {
				for _, c := range signals.Evaluate(signals.Facts{Agg: a, Now: at, Band: healthv1.Band_BAND_NEUTRAL}, &signals.State{}) {
					if c.Reason == tc.reason {
						return true
					}
				}
				return false
			}
			if before, at := holds(got.Add(-time.Second)), holds(got); before == at {
				t.Errorf("%s holds %v a second before %v and %v at it: no change there", tc.reason, before, got, at)
			}
		})
	}
}
