package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// An account's lead fit (GetAccountFit): what the PQL rules see for it and
// what they make of it. Customer health is for paying customers only; a
// prospect's or trial's page shows this instead.

// Bounds of what GetAccountFit renders of an account.
const (
	fitMaxEvents   = 50
	fitMaxAttrs    = 100
	fitMaxAttrText = 200
)

// GetAccountFit evaluates the active config's PQL rules for the account as
// of its latest applied event time, the `now` of routing's own evaluation
// after that event, with the same inputs (consume.go's evaluatePQL). It is
// apierr.ErrNotFound when routing has never heard of the account.
func (s *Service) GetAccountFit(ws, accountID string) (*routingv1.AccountFit, error) {
	var fit *routingv1.AccountFit
	err := s.View(ws, func(tx *store.Tx) error {
		agg, err := tx.Aggregates(accountID)
		if err != nil {
			return err
		}
		acct, err := tx.Account(accountID)
		if err != nil {
			return err
		}
		handoffs, err := tx.AssignmentsByAccount(accountID)
		if err != nil {
			return err
		}
		if !knownAccount(agg, acct) && len(handoffs) == 0 {
			return apierr.NotFound("routing has no record of account %q", accountID)
		}
		cfg, eng, err := s.engine(tx)
		if err != nil {
			return err
		}
		at := s.clk.Now()
		if agg.LastEventAt != 0 {
			at = time.Unix(agg.LastEventAt, 0).UTC()
		}
		p := fitProduct(acct, agg, at)
		fit = &routingv1.AccountFit{
			AccountId:     accountID,
			Lifecycle:     agg.Lifecycle().Proto(),
			AsOf:          timestamppb.New(at),
			Inputs:        fitInputs(p),
			ConfigVersion: cfg.GetVersion(),
		}
		for _, r := range eng.ExplainPQL(p) {
			rf := &routingv1.PqlRuleFit{
				Name: r.Name, Condition: r.Condition, Holds: r.Holds, Error: fitErr(r.Err),
				Qualified: slices.Contains(acct.PQLHolding, r.Name),
			}
			for _, c := range r.Criteria {
				rf.Criteria = append(rf.Criteria, &routingv1.FitCriterion{Expr: c.Expr, Met: c.Met, Error: fitErr(c.Err)})
			}
			fit.Rules = append(fit.Rules, rf)
		}
		return openPQL(tx, handoffs, fit)
	})
	return fit, err
}

// knownAccount reports whether routing has applied anything about the account:
// an event, a stage or health record.
func knownAccount(agg *account.Aggregates, a *store.Account) bool {
	return agg.FirstEventAt != 0 || agg.LastEventAt != 0 || len(agg.Events) > 0 ||
		a.Stage != "" || a.PreviousStage != "" || a.HealthBand != "" || a.Domain != "" ||
		len(a.Traits) > 0 || len(a.Signals) > 0 || len(a.Owners) > 0 || len(a.PQLHolding) > 0
}

// fitProduct is the PQL rules' context of an account at at, built as
// evaluatePQL builds it: signal attributes, overridden by group traits.
func fitProduct(a *store.Account, agg *account.Aggregates, at time.Time) rules.Product {
	attrs := map[string]any{}
	maps.Copy(attrs, a.SignalAttributes)
	maps.Copy(attrs, a.Traits)
	return rules.Product{
		Aggregates: agg, Now: at,
		Stage: a.Stage, PreviousStage: a.PreviousStage, HealthBand: a.HealthBand, HealthScore: a.HealthScore,
		Signals: a.Signals, Account: attrs,
	}
}

// openPQL sets the account's pending PQL handoff (the newest, should
// folding ever have left two) and its owner's name.
func openPQL(tx *store.Tx, ids []string, fit *routingv1.AccountFit) error {
	for _, id := range ids {
		a, err := tx.Assignment(id)
		if err != nil {
			return err
		}
		if a.GetType() != routingv1.HandoffType_HANDOFF_TYPE_PQL || !pending(a.GetState()) {
			continue
		}
		if cur := fit.GetOpenPqlHandoff(); cur != nil && !a.GetCreatedAt().AsTime().After(cur.GetCreatedAt().AsTime()) {
			continue
		}
		fit.OpenPqlHandoff, fit.OpenPqlOwnerName = a, ""
		if a.GetOwnerId() == "" {
			continue
		}
		switch o, err := tx.Owner(a.GetOwnerId()); {
		case err == nil:
			fit.OpenPqlOwnerName = o.GetName()
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	return nil
}

// fitInputs renders what the rules' variables and functions read.
func fitInputs(p rules.Product) *routingv1.FitInputs {
	agg, now := p.Aggregates, p.Now
	in := &routingv1.FitInputs{
		Status: string(agg.Status()), Stage: p.Stage, PreviousStage: p.PreviousStage,
		HealthBand: p.HealthBand, HealthScore: p.HealthScore, Signals: slices.Clone(p.Signals),
		Account: attrText(p.Account),
	}
	features := rules.PQLConfig.Features
	pa := &routingv1.ProductActivity{
		ActiveUsers_7D: int64(agg.ActiveUsers(7, now)), ActiveUsers_14D: int64(agg.ActiveUsers(14, now)), ActiveUsers_30D: int64(agg.ActiveUsers(30, now)),
		FeaturesUsed_7D: int64(agg.FeaturesUsed(features, 7, now)), FeaturesUsed_14D: int64(agg.FeaturesUsed(features, 14, now)), FeaturesUsed_30D: int64(agg.FeaturesUsed(features, 30, now)),
		ProductEvents_7D: agg.Count("", 7, now), ProductEvents_30D: agg.Count("", 30, now),
		KnownUsers: int64(len(agg.Users)), Integrations: int64(len(agg.Integrations)),
		FirstEventAt: fitTime(agg.FirstEventAt), LastEventAt: fitTime(agg.LastEventAt),
	}
	for _, f := range features {
		if agg.Count(f, 30, now) > 0 {
			pa.Features_30D = append(pa.Features_30D, f)
		}
	}
	names := slices.Collect(maps.Keys(agg.Events))
	sort.Slice(names, func(i, j int) bool {
		a, b := agg.Events[names[i]], agg.Events[names[j]]
		if a.Last != b.Last {
			return a.Last > b.Last
		}
		return names[i] < names[j]
	})
	for _, n := range names[:min(len(names), fitMaxEvents)] {
		sp := agg.Events[n]
		pa.Events = append(pa.Events, &routingv1.EventActivity{
			Name: n, Count_7D: agg.Count(n, 7, now), Count_30D: agg.Count(n, 30, now), Count_400D: agg.Count(n, account.KeepDays, now),
			FirstSeen: fitTime(sp.First), LastSeen: fitTime(sp.Last),
		})
	}
	in.Product = pa
	return in
}

// attrText renders the `account` map as text: strings as they are, other
// values as JSON; the first fitMaxAttrs keys by name, values cut at
// fitMaxAttrText bytes.
func attrText(m map[string]any) map[string]string {
	keys := slices.Sorted(maps.Keys(m))
	out := make(map[string]string, min(len(keys), fitMaxAttrs))
	for _, k := range keys[:min(len(keys), fitMaxAttrs)] {
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
		default:
			b, err := json.Marshal(x)
			if err != nil {
				v = fmt.Sprint(x)
			} else {
				v = string(b)
			}
		}
		if len(v) > fitMaxAttrText {
			v = fitCut(v, fitMaxAttrText)
		}
		out[k] = v
	}
	return out
}

// fitCut shortens s to at most n bytes without splitting a UTF-8 sequence.
func fitCut(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func fitTime(sec int64) *timestamppb.Timestamp {
	if sec == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(sec, 0).UTC())
}

func fitErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
