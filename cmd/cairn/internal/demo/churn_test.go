package demo

import (
	"testing"
)

// TestGenerateAnnualChurn checks the generator's ground truth for annual
// logo churn: of the accounts that were customers when the simulated year
// began (their subscription started before it), the share that churned
// within the year. cmd/cairn/demo_ranges_test.go measures the same figure
// on the real suite for the default workspace (seed 1, 300 accounts); this
// checks it cheaply. Other seeds are logged, not checked: with about 100
// customers at the start, churn varies by a few points from seed to seed
// (seeds 2, 3 and 42 measured 14–19%).
func TestGenerateAnnualChurn(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		ds := Generate(Options{Seed: seed, Accounts: 300, Now: fixedNow})
		start := fixedNow.AddDate(0, 0, -365)
		existing := map[string]bool{}
		for _, ev := range ds.Events {
			if ev.Event == "billing.subscription_started" && ev.Timestamp.Before(start) {
				existing[ev.Context["groupId"].(string)] = true
			}
		}
		churned, paying, collapsing := 0, 0, 0
		for _, a := range ds.Accounts {
			if existing[a.ID] && a.Churned {
				churned++
			}
			if a.Customer && !a.Churned {
				paying++
				if a.Trajectory == "collapsing" {
					collapsing++
				}
			}
		}
		rate := float64(churned) / float64(len(existing))
		t.Logf("seed %d: %d of %d customers at the start churned (%.1f%%); %d of %d paying accounts collapsing", seed, churned, len(existing), 100*rate, collapsing, paying)
		if seed != 1 {
			continue
		}
		if rate < 0.05 || rate > 0.15 {
			t.Errorf("seed %d: annual logo churn %.1f%%, want 5–15%%", seed, 100*rate)
		}
		if share := float64(collapsing) / float64(paying); share < 0.08 || share > 0.25 {
			t.Errorf("seed %d: %.1f%% of paying accounts collapsing, want 8–25%% (the at-risk band's source)", seed, 100*share)
		}
	}
}
