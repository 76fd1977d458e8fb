package app

import (
	"context"
	"errors"
	"sort"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/signals"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// GetAccountHealth returns an account's score with its explanation, or an
// error matching apierr.ErrNotFound.
func (a *App) GetAccountHealth(_ context.Context, ws, acct string) (*healthv1.AccountHealth, error) {
	var h *healthv1.AccountHealth
	err := a.db.View(func(tx *kv.Tx) error {
		var err error
		h, err = store.GetHealth(tx, ws, acct)
		return err
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// History returns up to n of an account's daily snapshots, newest first,
// from the day before the day before ("": the newest) back to the day from
// ("": the oldest); more says whether older ones remain.
func (a *App) History(_ context.Context, ws, acct, from, before string, n int) (snaps []*healthv1.Snapshot, more bool, err error) {
	err = a.db.View(func(tx *kv.Tx) error {
		return store.ScanSnapshots(tx, ws, acct, before, func(sn *store.Snapshot) (bool, error) {
			if from != "" && sn.Day < from {
				return false, nil
			}
			if len(snaps) == n {
				more = true
				return false, nil
			}
			snaps = append(snaps, &healthv1.Snapshot{Day: sn.Day, Score: sn.Score, Band: sn.Band})
			return true, nil
		})
	})
	if err != nil {
		return nil, false, err
	}
	return snaps, more, nil
}

// ListAccounts returns the workspace's account rows in band (unspecified:
// all) that hold an open signal with reason signal ("": any) and are inside
// renewalWindow (one of signals.Windows; 0: any), ordered by by
// (unspecified: by account id).
func (a *App) ListAccounts(_ context.Context, ws string, band healthv1.Band, signal string, renewalWindow int, by healthv1.AccountSort) ([]*healthv1.AccountRow, error) {
	var reasons []string
	if signal != "" {
		reasons = append(reasons, signal)
	}
	if renewalWindow != 0 {
		reasons = append(reasons, signals.RenewalReason(renewalWindow))
	}
	var rows []*healthv1.AccountRow
	err := a.db.View(func(tx *kv.Tx) error {
		var only map[string]bool
		for _, r := range reasons {
			set, err := store.AccountsWithSignal(tx, ws, r)
			if err != nil {
				return err
			}
			if only == nil {
				only = set
				continue
			}
			for a := range only {
				if !set[a] {
					delete(only, a)
				}
			}
		}
		keep := func(r *healthv1.AccountRow) {
			if band == healthv1.Band_BAND_UNSPECIFIED || r.GetBand() == band {
				rows = append(rows, r)
			}
		}
		if only != nil {
			ids := make([]string, 0, len(only))
			for a := range only {
				ids = append(ids, a)
			}
			sort.Strings(ids)
			for _, a := range ids {
				r, err := store.GetRow(tx, ws, a)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				keep(r)
			}
			return nil
		}
		return store.ForEachRow(tx, ws, func(r *healthv1.AccountRow) error { keep(r); return nil })
	})
	if err != nil {
		return nil, err
	}
	var less func(a, b *healthv1.AccountRow) bool
	switch by {
	case healthv1.AccountSort_ACCOUNT_SORT_ARR:
		less = func(a, b *healthv1.AccountRow) bool { return a.GetArr() > b.GetArr() }
	case healthv1.AccountSort_ACCOUNT_SORT_SCORE_CHANGE:
		// Biggest drops first: that is what a CSM triages.
		less = func(a, b *healthv1.AccountRow) bool { return a.GetScoreChange_30D() < b.GetScoreChange_30D() }
	case healthv1.AccountSort_ACCOUNT_SORT_SCORE:
		less = func(a, b *healthv1.AccountRow) bool { return a.GetScore() < b.GetScore() }
	}
	if less != nil {
		sort.SliceStable(rows, func(i, j int) bool { return less(rows[i], rows[j]) })
	}
	return rows, nil
}

// ListSignals returns up to n of the workspace's signals, open and closed,
// of account acct ("": every account), of kind and in state (unspecified:
// any), by account then reason, starting after the signal key after
// (empty: from the first). next is the key to continue after, nil when no
// more remain.
func (a *App) ListSignals(_ context.Context, ws, acct string, kind commonv1.SignalKind, state commonv1.SignalState, after []byte, n int) (sigs []*commonv1.Signal, next []byte, err error) {
	err = a.db.View(func(tx *kv.Tx) error {
		var last []byte
		more := false
		err := store.ScanSignals(tx, ws, acct, after, func(k []byte, sg *commonv1.Signal) (bool, error) {
			if kind != commonv1.SignalKind_SIGNAL_KIND_UNSPECIFIED && sg.GetKind() != kind {
				return true, nil
			}
			if state != commonv1.SignalState_SIGNAL_STATE_UNSPECIFIED && sg.GetState() != state {
				return true, nil
			}
			if len(sigs) == n {
				more = true
				return false, nil
			}
			sigs = append(sigs, sg)
			last = append(last[:0], k...)
			return true, nil
		})
		if more {
			next = last
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return sigs, next, nil
}
