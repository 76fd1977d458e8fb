package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
)

// BenchmarkFunnel computes the funnel of 100,000 accounts with 3 stage
// visits each on average, from a real bbolt file.
func BenchmarkFunnel(b *testing.B) {
	def, err := journey.Template("seven-stage-b2b")
	if err != nil {
		b.Fatal(err)
	}
	db := storetest.Open(b)
	const accounts = 100000
	err = db.Update(func(tx *bbolt.Tx) error {
		for a := 0; a < accounts; a++ {
			acct := fmt.Sprintf("acct-%06d", a)
			at := t0.Add(time.Duration(a) * time.Minute)
			n := 1 + a%5
			for s := 0; s < n && s < len(def.GetStages()); s++ {
				v := &store.Visit{Stage: def.GetStages()[s].GetId(), Account: acct, Entered: at, Cohort: at.Format("2006-01"), Segment: []string{"smb", "mid", "ent"}[a%3]}
				at = at.Add(time.Duration(1+a%30) * 24 * time.Hour)
				if s < n-1 {
					v.Left, v.Outcome = at, store.OutcomeConverted
				}
				v.Dropoff = a%7 == 0
				if err := store.Live.PutVisit(tx, "w", "b2b", v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := db.View(func(tx *bbolt.Tx) error {
			resp, err := computeFunnel(tx, store.Live, "w", "b2b", def, "", "")
			if err != nil {
				return err
			}
			if resp.GetAccounts() != accounts {
				return fmt.Errorf("accounts = %d", resp.GetAccounts())
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
