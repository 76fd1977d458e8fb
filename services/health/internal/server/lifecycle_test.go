package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

func (e *env) apply(t *testing.T, recs ...*ingestionv1.LogRecord) {
	t.Helper()
	if err := e.db.Update(func(tx *kv.Tx) error { return e.app.ApplyIngestion(tx, 0, recs) }); err != nil {
		t.Fatal(err)
	}
}

func (e *env) health(t *testing.T, acct string) *healthv1.AccountHealth {
	t.Helper()
	r, err := e.clients["read"].GetAccountHealth(context.Background(), &healthv1.GetAccountHealthRequest{AccountId: acct})
	if err != nil {
		t.Fatalf("GetAccountHealth(%s): %v", acct, err)
	}
	return r.GetHealth()
}

// listed returns the account ids ListAccounts returns for band
// (unspecified: all).
func (e *env) listed(t *testing.T, band healthv1.Band) []string {
	t.Helper()
	r, err := e.clients["read"].ListAccounts(context.Background(), &healthv1.ListAccountsRequest{Band: band})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range r.GetAccounts() {
		ids = append(ids, a.GetAccountId())
	}
	return ids
}

func (e *env) signalsOf(t *testing.T, acct string) []*commonv1.Signal {
	t.Helper()
	r, err := e.clients["read"].ListSignals(context.Background(), &healthv1.ListSignalsRequest{AccountId: acct, Page: &commonv1.PageRequest{PageSize: 100}})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetSignals()
}

// scoreChanges reads acct's score changes from the health log over
// Subscribe (service key).
func (e *env) scoreChanges(t *testing.T, acct string) []*healthv1.ScoreChange {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := stream.Partition("w", acct, e.log.Partitions())
	head := e.log.Head(p)
	if head == 0 {
		return nil
	}
	st, err := e.clients["svc"].Subscribe(ctx, &healthv1.SubscribeRequest{Partition: p, FromOffset: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out []*healthv1.ScoreChange
	for last := uint64(0); last < head; {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range r.GetRecords() {
			last = rec.GetOffset()
			if c := rec.GetScoreChange(); c.GetAccountId() == acct {
				out = append(out, c)
			}
		}
	}
	return out
}

func open(sigs []*commonv1.Signal) []string {
	var out []string
	for _, s := range sigs {
		if s.GetState() == commonv1.SignalState_SIGNAL_STATE_OPEN {
			out = append(out, s.GetReason())
		}
	}
	return out
}

// usage is a month of light product use of acct from day: one user, one
// feature, and an NPS detractor answer, enough for risk signals.
func usage(acct string, from, to int) []*ingestionv1.LogRecord {
	tr := ingestionv1.EventType_EVENT_TYPE_TRACK
	var recs []*ingestionv1.LogRecord
	for d := from; d < to; d++ {
		recs = append(recs, ev(acct, d, tr, "u1", features[0]))
	}
	return append(recs, ev(acct, to, tr, "u1", "survey.nps", "score", 2))
}

// TestCustomerHealthIsForPayingAccounts follows accounts through their
// lifecycle over the API: a trial is not scored and opens no signals; a
// customer is scored and listed; when it churns it leaves every list and
// band, its open signals close with closed_reason "churned" and later
// events open none, while its last score stays readable; won back, it is
// scored again; a trial that converts is scored from then on.
func TestCustomerHealthIsForPayingAccounts(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	tr := ingestionv1.EventType_EVENT_TYPE_TRACK
	gt := ingestionv1.EventType_EVENT_TYPE_GROUP
	atRisk := healthv1.Band_BAND_AT_RISK

	// A trial and a customer with the same poor usage.
	e.apply(t, ev("tri", 0, gt, "", "", "seats", 10, "arr", 1000), ev("tri", 0, tr, "u1", "trial_started"),
		ev("cus", 0, gt, "", "", "seats", 10, "arr", 7000), ev("cus", 0, tr, "", "billing.subscription_started", "plan", "pro"))
	e.apply(t, usage("tri", 1, 50)...)
	e.apply(t, usage("cus", 1, 50)...)

	t.Run("trial is not scored", func(t *testing.T) {
		h := e.health(t, "tri")
		if h.GetScored() || h.GetScore() != 0 || h.GetBand() != healthv1.Band_BAND_UNSPECIFIED || len(h.GetComponents()) != 0 ||
			h.GetAsOf() != nil || h.GetLifecycle().GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL {
			t.Fatalf("trial health: scored %v score %v band %v components %d as_of %v lifecycle %v",
				h.GetScored(), h.GetScore(), h.GetBand(), len(h.GetComponents()), h.GetAsOf(), h.GetLifecycle())
		}
		if h.GetComputedAt() == nil {
			t.Error("an unscored account still says when it was evaluated (computed_at)")
		}
		if s := e.signalsOf(t, "tri"); len(s) != 0 {
			t.Errorf("trial opened signals: %v", s)
		}
		if cs := e.scoreChanges(t, "tri"); len(cs) != 0 {
			t.Errorf("trial published score changes: %v", cs)
		}
		if slices.Contains(e.listed(t, healthv1.Band_BAND_UNSPECIFIED), "tri") {
			t.Error("trial is listed")
		}
		hist, err := e.clients["read"].ListHealthHistory(ctx, &healthv1.ListHealthHistoryRequest{AccountId: "tri"})
		if err != nil || len(hist.GetSnapshots()) != 0 {
			t.Errorf("trial history: %v %v", hist.GetSnapshots(), err)
		}
	})

	var before *healthv1.AccountHealth
	t.Run("customer is scored", func(t *testing.T) {
		before = e.health(t, "cus")
		if !before.GetScored() || before.GetBand() != atRisk || len(before.GetComponents()) == 0 ||
			before.GetLifecycle().GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER ||
			!before.GetAsOf().AsTime().Equal(before.GetComputedAt().AsTime()) {
			t.Fatalf("customer health: scored %v band %v lifecycle %v as_of %v computed_at %v",
				before.GetScored(), before.GetBand(), before.GetLifecycle(), before.GetAsOf(), before.GetComputedAt())
		}
		if got := e.listed(t, atRisk); !slices.Equal(got, []string{"cus"}) {
			t.Errorf("at risk = %v, want [cus]", got)
		}
		if got := open(e.signalsOf(t, "cus")); !slices.Contains(got, "nps_detractor") {
			t.Errorf("customer's open signals = %v, want nps_detractor among them", got)
		}
	})

	churnAt := t0.AddDate(0, 0, 60).Add(12 * time.Hour)
	e.apply(t, ev("cus", 60, tr, "", "billing.churned"))
	t.Run("churned leaves lists and closes its signals", func(t *testing.T) {
		h := e.health(t, "cus")
		if h.GetScored() || h.GetLifecycle().GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED ||
			!h.GetLifecycle().GetSince().AsTime().Equal(churnAt) {
			t.Fatalf("churned health: scored %v lifecycle %v", h.GetScored(), h.GetLifecycle())
		}
		// The last score stays readable, as of when it was computed.
		if h.GetScore() != before.GetScore() || h.GetBand() != before.GetBand() || len(h.GetComponents()) != len(before.GetComponents()) ||
			!h.GetAsOf().AsTime().Equal(before.GetAsOf().AsTime()) || !h.GetComputedAt().AsTime().Equal(churnAt) {
			t.Errorf("churned keeps score %v band %v as_of %v computed_at %v; before %v %v %v",
				h.GetScore(), h.GetBand(), h.GetAsOf(), h.GetComputedAt(), before.GetScore(), before.GetBand(), before.GetAsOf())
		}
		if len(h.GetOpenSignals()) != 0 {
			t.Errorf("churned health holds open signals: %v", h.GetOpenSignals())
		}
		for _, band := range []healthv1.Band{healthv1.Band_BAND_UNSPECIFIED, atRisk} {
			if got := e.listed(t, band); slices.Contains(got, "cus") {
				t.Errorf("churned account listed in band %v: %v", band, got)
			}
		}
		sigs := e.signalsOf(t, "cus")
		if len(sigs) == 0 {
			t.Fatal("no signals at all")
		}
		for _, s := range sigs {
			if s.GetState() != commonv1.SignalState_SIGNAL_STATE_CLOSED || s.GetAttributes()["closed_reason"] != "churned" ||
				!s.GetClosedAt().AsTime().Equal(churnAt) {
				t.Errorf("signal %s: state %v closed_reason %q closed_at %v", s.GetReason(), s.GetState(), s.GetAttributes()["closed_reason"], s.GetClosedAt())
			}
		}
		// The log says it has no customer health band any more.
		if cs := e.scoreChanges(t, "cus"); len(cs) == 0 || cs[len(cs)-1].GetBand() != healthv1.Band_BAND_UNSPECIFIED ||
			cs[len(cs)-1].GetPreviousBand() != before.GetBand() || !cs[len(cs)-1].GetAt().AsTime().Equal(churnAt) {
			t.Errorf("last score change on the log: %v", cs[len(cs)-1:])
		}
		hist, err := e.clients["read"].ListHealthHistory(ctx, &healthv1.ListHealthHistoryRequest{AccountId: "cus", Page: &commonv1.PageRequest{PageSize: 1}})
		if err != nil || len(hist.GetSnapshots()) != 1 || hist.GetSnapshots()[0].GetDay() != before.GetAsOf().AsTime().Format(time.DateOnly) {
			t.Errorf("history after churn: %v %v", hist.GetSnapshots(), err)
		}
	})

	t.Run("churned opens no new signals", func(t *testing.T) {
		n, changes := len(e.signalsOf(t, "cus")), len(e.scoreChanges(t, "cus"))
		e.apply(t, usage("cus", 61, 70)...)
		if _, err := e.clients["admin"].Rescore(ctx, &healthv1.RescoreRequest{}); err != nil {
			t.Fatal(err)
		}
		sigs := e.signalsOf(t, "cus")
		if got := open(sigs); len(got) != 0 || len(sigs) != n {
			t.Errorf("after churn: %d signals (was %d), open %v", len(sigs), n, got)
		}
		if h := e.health(t, "cus"); h.GetScored() || slices.Contains(e.listed(t, atRisk), "cus") {
			t.Errorf("churned account scored again: %v", h)
		}
		if cs := e.scoreChanges(t, "cus"); cs[len(cs)-1].GetBand() != healthv1.Band_BAND_UNSPECIFIED || len(cs) != changes {
			t.Errorf("score changes published while churned: %d, was %d", len(cs), changes)
		}
	})

	t.Run("won back is scored again", func(t *testing.T) {
		e.apply(t, ev("cus", 80, tr, "", "billing.subscription_started", "plan", "pro"))
		e.apply(t, usage("cus", 81, 90)...)
		h := e.health(t, "cus")
		if !h.GetScored() || h.GetLifecycle().GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK || h.GetBand() == healthv1.Band_BAND_UNSPECIFIED {
			t.Fatalf("won back: scored %v lifecycle %v band %v", h.GetScored(), h.GetLifecycle(), h.GetBand())
		}
		if cs := e.scoreChanges(t, "cus"); cs[len(cs)-1].GetBand() != h.GetBand() {
			t.Errorf("win-back published band %v, health says %v", cs[len(cs)-1].GetBand(), h.GetBand())
		}
		if got := e.listed(t, h.GetBand()); !slices.Contains(got, "cus") {
			t.Errorf("won-back account not listed in its band: %v", got)
		}
		if got := open(e.signalsOf(t, "cus")); !slices.Contains(got, "nps_detractor") {
			t.Errorf("won-back account's open signals = %v", got)
		}
	})

	t.Run("trial converts", func(t *testing.T) {
		e.apply(t, ev("tri", 90, tr, "", "trial_converted"))
		h := e.health(t, "tri")
		if !h.GetScored() || h.GetLifecycle().GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER || h.GetBand() == healthv1.Band_BAND_UNSPECIFIED {
			t.Fatalf("converted trial: scored %v lifecycle %v band %v", h.GetScored(), h.GetLifecycle(), h.GetBand())
		}
		if !slices.Contains(e.listed(t, healthv1.Band_BAND_UNSPECIFIED), "tri") {
			t.Error("converted trial not listed")
		}
	})
}

// TestBacktestCoversPayingAccountsOnly: a snapshot from when the account was
// a trial (written before health scored paying accounts only) is no
// customer health score and is left out of the backtest.
func TestBacktestCoversPayingAccountsOnly(t *testing.T) {
	e := setup(t)
	e.seed(t)
	ctx := context.Background()
	tr := ingestionv1.EventType_EVENT_TYPE_TRACK
	// A trial that churned (a churn with no purchase makes it a customer at
	// the churn), with a legacy snapshot from its trial days.
	e.apply(t, ev("tri", 0, tr, "u1", "trial_started"), ev("tri", 140, tr, "", "billing.churned"))
	if err := e.db.Update(func(tx *kv.Tx) error {
		return store.PutSnapshot(tx, "w", "tri", &store.Snapshot{Day: t0.AddDate(0, 0, 80).Format(time.DateOnly), Score: 90, Band: healthv1.Band_BAND_HEALTHY})
	}); err != nil {
		t.Fatal(err)
	}
	bt, err := e.clients["read"].Backtest(ctx, &healthv1.BacktestRequest{HorizonDays: 60, Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	if bt.GetRenewed() != 1 || bt.GetChurned() != 1 || len(bt.GetSamples()) != 2 || bt.GetAuc() != 1 {
		t.Fatalf("backtest counted the trial's snapshot: renewed %d churned %d samples %d auc %v",
			bt.GetRenewed(), bt.GetChurned(), len(bt.GetSamples()), bt.GetAuc())
	}
}
