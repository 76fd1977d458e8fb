package rules

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// Product is the product-signal context of one account that PQL rules see.
// The CEL variables are `status` (string: the account's lifecycle status,
// "prospect", "trial", "customer", "churned" or "won_back", derived from the
// aggregates), `stage` (string), `previous_stage` (string), `health_band`
// (string, e.g. "healthy"), `health_score` (double), `signals` (list of open
// signal reasons, e.g. "activation_reached") and `account` (map of account
// traits and signal attributes); the functions are pkg/domain/account's over
// the account's product aggregates (count(name, window), has_event(name),
// active_users(window), features_used(window), ...), with the event
// vocabulary's features (pkg/domain/vocab) as the features.
type Product struct {
	// Aggregates are the account's product aggregates; nil means none.
	Aggregates *account.Aggregates
	// Now is the evaluation time of the aggregate functions' windows: the
	// time of the record that triggered the evaluation. An earlier time than
	// the aggregates' latest event (a stage or health record, whose logs
	// trail ingestion's; an event that arrived late) evaluates as of that
	// latest event instead (Product.At).
	Now time.Time
	// Stage is the account's current journey stage.
	Stage string
	// PreviousStage is the stage before the last transition.
	PreviousStage string
	// HealthBand is the lower-cased band name.
	HealthBand string
	// HealthScore is the latest score.
	HealthScore float64
	// Signals are the reasons of open signals.
	Signals []string
	// Account holds traits and attributes.
	Account map[string]any
}

type compiledPQL struct {
	name string
	prg  *account.Program
	// statuses are the lifecycle statuses the condition requires
	// (account.Env.StatusGuard): for any other status it cannot hold.
	statuses []string
}

// PQLConfig is how PQL rules read the aggregates (account.PQLConfig).
var PQLConfig = account.PQLConfig

// pqlEnv is the PQL rules' environment, shared with the demo generator.
func pqlEnv() (*account.Env, error) { return account.NewPQLEnv() }

func compilePQL(rs []*routingv1.PqlRule) ([]compiledPQL, []*commonv1.ValidationError) {
	var errs []*commonv1.ValidationError
	env, err := pqlEnv()
	if err != nil {
		return nil, []*commonv1.ValidationError{{Path: "pql_rules", Message: fmt.Sprintf("build CEL environment: %v", err)}}
	}
	var out []compiledPQL
	seen := map[string]bool{}
	for i, r := range rs {
		path := fmt.Sprintf("pql_rules[%d]", i)
		if r.GetName() == "" {
			errs = append(errs, &commonv1.ValidationError{Path: path + ".name", Message: "required"})
		} else if seen[r.GetName()] {
			errs = append(errs, &commonv1.ValidationError{Path: path + ".name", Message: fmt.Sprintf("duplicate PQL rule %q", r.GetName())})
		}
		seen[r.GetName()] = true
		if strings.TrimSpace(r.GetCondition()) == "" {
			errs = append(errs, &commonv1.ValidationError{Path: path + ".condition", Message: "required"})
			continue
		}
		prg, err := env.CompileBool(r.GetCondition())
		if err != nil {
			errs = append(errs, &commonv1.ValidationError{Path: path + ".condition", Message: err.Error()})
			continue
		}
		out = append(out, compiledPQL{name: r.GetName(), prg: prg, statuses: env.StatusGuard(r.GetCondition())})
	}
	return out, errs
}

// HasPQL reports whether the config has PQL rules.
func (e *Engine) HasPQL() bool { return len(e.pql) > 0 }

// PQLCanHold reports whether a PQL rule can hold for an account of a
// lifecycle status (the `status` of Product.inputs): false when every rule
// requires another status in a top-level `status == "..."` conjunct, so
// that EvaluatePQL would find none holding, and no error, whatever the rest
// of the product context. Most accounts are not in trial, which is what PQL
// rules look for: their events then need no evaluation.
func (e *Engine) PQLCanHold(status account.Status) bool {
	for _, r := range e.pql {
		if !slices.ContainsFunc(r.statuses, func(s string) bool { return s != string(status) }) {
			return true
		}
	}
	return false
}

// EvaluatePQL returns the PQL rules that newly hold for an account, and the
// full set that holds now. A rule fires once per qualification: it fires when
// it starts to hold, not again while it keeps holding, and again only after
// it stopped holding. Evaluation errors count as not holding.
func (e *Engine) EvaluatePQL(p Product, holding []string) (fired, now []string, errs []error) {
	was := make(map[string]bool, len(holding))
	for _, h := range holding {
		was[h] = true
	}
	agg, vars := p.inputs()
	at := p.At()
	for _, r := range e.pql {
		ok, err := r.prg.EvalBool(agg, at, vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("evaluate PQL rule %q: %w", r.name, err))
			continue
		}
		if !ok {
			continue
		}
		now = append(now, r.name)
		if !was[r.name] {
			fired = append(fired, r.name)
		}
	}
	sort.Strings(now)
	return fired, now, errs
}

// At is the evaluation time: Now, or the aggregates' latest event time
// when that is later. The aggregates already hold every event applied up
// to it, so windows ending on an earlier day would mix that day's windows
// with later events and the account's later status: a rule over recent
// activity would seem to stop holding when a stage record dated before the
// activity is applied, and fire again at the next evaluation. Like
// health's, an account's PQL evaluation time never moves backwards.
func (p Product) At() time.Time {
	if p.Aggregates != nil && p.Aggregates.LastEventAt != 0 {
		if last := time.Unix(p.Aggregates.LastEventAt, 0).UTC(); last.After(p.Now) {
			return last
		}
	}
	return p.Now
}

// inputs are the aggregates (never nil) and CEL variables of an evaluation.
func (p Product) inputs() (*account.Aggregates, map[string]any) {
	agg := p.Aggregates
	if agg == nil {
		agg = account.New("", "")
	}
	signals := p.Signals
	if signals == nil {
		signals = []string{}
	}
	return agg, map[string]any{
		"status":         string(agg.Status()),
		"stage":          p.Stage,
		"previous_stage": p.PreviousStage,
		"health_band":    p.HealthBand,
		"health_score":   p.HealthScore,
		"signals":        signals,
		"account":        orEmpty(p.Account),
	}
}
