// Package rules decides who owns a handoff: ordered CEL rules (first match
// wins), lead-to-account matching, named owners and pools with round-robin,
// weighted round-robin or least-loaded strategies, capacity caps, working hours
// and out-of-office, and a fallback pool. Every decision is explained in a
// routingv1.Decision. It also evaluates PQL rules over product signals.
//
// The package is pure: all state (owners, pools, loads, cursors, account
// ownership) comes in through the Directory interface and cursor moves go out
// in the Result, so the caller can apply them in the same transaction as the
// assignment.
package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/hours"
)

// CostLimit bounds the CEL evaluation cost of one condition, so that a
// pathological expression cannot stall routing.
const CostLimit = 10_000

// maxWeight caps an owner's weighted round-robin weight.
const maxWeight = 1000

// FallbackRule is Decision.rule when no rule matched.
const FallbackRule = "fallback"

// Reasons a candidate was skipped.
const (
	SkipUnknownOwner = "unknown_owner"
	SkipOutOfOffice  = "out_of_office"
	SkipAtCapacity   = "at_capacity"
	SkipOffHours     = "outside_working_hours"
	// SkipTerritory and SkipSegment apply to pool members whose
	// territories or segments are set and do not include the lead's.
	SkipTerritory = "territory_mismatch"
	SkipSegment   = "segment_mismatch"
)

// Owner is an owner with its calendar built.
type Owner struct {
	// Owner is the stored directory entry.
	Owner *routingv1.Owner
	// Calendar is built from the owner's zone, hours, holidays and OOO.
	Calendar *hours.Calendar
}

// Directory is the routing state a decision reads.
type Directory interface {
	// Owner returns an owner by id.
	Owner(id string) (*Owner, bool)
	// Pool returns a pool by id.
	Pool(id string) (*routingv1.Pool, bool)
	// Load is the owner's open assignment count.
	Load(ownerID string) int
	// AccountOwner finds the existing owner of the team for the lead's
	// account, matched by account id first, else by email domain.
	AccountOwner(accountID, domain string, team routingv1.Team) (string, bool)
	// Cursor is the pool's round-robin position.
	Cursor(poolID string) uint64
}

// Input is what is being routed.
type Input struct {
	// Type is the handoff type.
	Type routingv1.HandoffType
	// AccountID is the lead's account, if known.
	AccountID string
	// Email is the lead's email, used for domain matching.
	Email string
	// Lead, Account and Signal are the CEL variables of the same names.
	Lead, Account, Signal map[string]any
	// Now is the decision time (working hours, out of office).
	Now time.Time
	// Territory and Segment of the lead (or account), matched against pool
	// members' territories and segments; empty matches everyone.
	Territory, Segment string
}

// Result is a decision.
type Result struct {
	// OwnerID is the chosen owner; empty when nobody was eligible.
	OwnerID string
	// Decision explains the choice.
	Decision *routingv1.Decision
	// Cursors are the new round-robin positions to store, by pool id.
	Cursors map[string]uint64
	// Errors are rule evaluation errors (the rule then counts as not matched).
	Errors []error
}

type compiledRule struct {
	rule  *routingv1.Rule
	types map[routingv1.HandoffType]bool
	prg   cel.Program
}

// Engine is a compiled routing config.
type Engine struct {
	rules    []compiledRule
	pql      []compiledPQL
	fallback string
}

func ruleEnv() (*cel.Env, error) {
	m := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("lead", m),
		cel.Variable("account", m),
		cel.Variable("signal", m),
		cel.Variable("type", cel.StringType),
	)
}

// compileBool compiles a boolean CEL condition with the cost limit.
func compileBool(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("condition must be bool, is %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit))
	if err != nil {
		return nil, fmt.Errorf("build program: %w", err)
	}
	return prg, nil
}

// Compile compiles and validates a routing config. On any problem it returns
// a nil engine and every problem found, with paths like "rules[2].condition".
func Compile(cfg *routingv1.Config) (*Engine, []*commonv1.ValidationError) {
	var errs []*commonv1.ValidationError
	add := func(path, format string, a ...any) {
		errs = append(errs, &commonv1.ValidationError{Path: path, Message: fmt.Sprintf(format, a...)})
	}
	env, err := ruleEnv()
	if err != nil {
		add("", "build CEL environment: %v", err)
		return nil, errs
	}
	e := &Engine{fallback: cfg.GetFallbackPoolId()}
	seen := map[string]bool{}
	for i, r := range cfg.GetRules() {
		path := fmt.Sprintf("rules[%d]", i)
		if r.GetName() == "" {
			add(path+".name", "required")
		} else if seen[r.GetName()] {
			add(path+".name", "duplicate rule %q", r.GetName())
		}
		seen[r.GetName()] = true
		switch r.GetAction() {
		case routingv1.ActionKind_ACTION_KIND_OWNER:
			if r.GetOwnerId() == "" {
				add(path+".owner_id", "required for action OWNER")
			}
		case routingv1.ActionKind_ACTION_KIND_POOL:
			if r.GetPoolId() == "" {
				add(path+".pool_id", "required for action POOL")
			}
		case routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER:
			if r.GetTeam() == routingv1.Team_TEAM_UNSPECIFIED {
				add(path+".team", "required for action ACCOUNT_OWNER")
			}
		default:
			add(path+".action", "must be ACCOUNT_OWNER, OWNER or POOL")
		}
		cr := compiledRule{rule: r, types: map[routingv1.HandoffType]bool{}}
		for _, t := range r.GetTypes() {
			cr.types[t] = true
		}
		cond := r.GetCondition()
		if strings.TrimSpace(cond) == "" {
			cond = "true"
		}
		prg, err := compileBool(env, cond)
		if err != nil {
			add(path+".condition", "%v", err)
			continue
		}
		cr.prg = prg
		e.rules = append(e.rules, cr)
	}
	pql, perrs := compilePQL(cfg.GetPqlRules())
	errs = append(errs, perrs...)
	e.pql = pql
	errs = append(errs, validateSLA(cfg.GetSlaPolicies())...)
	if len(errs) > 0 {
		return nil, errs
	}
	return e, nil
}

func validateSLA(ps []*routingv1.SlaPolicy) []*commonv1.ValidationError {
	var errs []*commonv1.ValidationError
	for i, p := range ps {
		path := fmt.Sprintf("sla_policies[%d]", i)
		if p.GetType() == routingv1.HandoffType_HANDOFF_TYPE_UNSPECIFIED {
			errs = append(errs, &commonv1.ValidationError{Path: path + ".type", Message: "required"})
		}
		if p.GetWithin().AsDuration() <= 0 {
			errs = append(errs, &commonv1.ValidationError{Path: path + ".within", Message: "must be positive"})
		}
	}
	return errs
}

// Domain returns the lower-cased domain of an email, or "" for free-mail
// providers, whose domain says nothing about the account.
func Domain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 || at == len(email)-1 {
		return ""
	}
	d := strings.ToLower(email[at+1:])
	switch d {
	case "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de":
		return ""
	}
	return d
}

// Decide routes one input.
func (e *Engine) Decide(in Input, dir Directory) Result {
	res := Result{Decision: &routingv1.Decision{}, Cursors: map[string]uint64{}}
	vars := map[string]any{
		"lead":    orEmpty(in.Lead),
		"account": orEmpty(in.Account),
		"signal":  orEmpty(in.Signal),
		"type":    TypeName(in.Type),
	}
	matched := false
	for _, r := range e.rules {
		if len(r.types) > 0 && !r.types[in.Type] {
			res.Decision.RulesNotMatched = append(res.Decision.RulesNotMatched, r.rule.GetName())
			continue
		}
		out, _, err := r.prg.Eval(vars)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("evaluate rule %q: %w", r.rule.GetName(), err))
			res.Decision.RulesNotMatched = append(res.Decision.RulesNotMatched, r.rule.GetName())
			continue
		}
		if b, ok := out.Value().(bool); !ok || !b {
			res.Decision.RulesNotMatched = append(res.Decision.RulesNotMatched, r.rule.GetName())
			continue
		}
		matched = true
		res.Decision.Rule = r.rule.GetName()
		if id := e.act(r.rule, in, dir, &res); id != "" {
			res.OwnerID = id
			return res
		}
		break
	}
	if !matched {
		res.Decision.Rule = FallbackRule
	}
	if e.fallback != "" {
		res.OwnerID = pick(e.fallback, in, dir, &res)
	}
	return res
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// TypeName is the CEL `type` value: "mql", "pql", "sql", "closed_won",
// "renewal", "risk" or "manual".
func TypeName(t routingv1.HandoffType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "HANDOFF_TYPE_"))
}

// act applies a matched rule; it returns "" when nobody was eligible.
func (e *Engine) act(r *routingv1.Rule, in Input, dir Directory, res *Result) string {
	switch r.GetAction() {
	case routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER:
		if id, ok := dir.AccountOwner(in.AccountID, Domain(in.Email), r.GetTeam()); ok {
			// An existing relationship outweighs capacity and working
			// hours; only absence or a deleted owner moves the handoff on.
			reason := ""
			o, ok := dir.Owner(id)
			switch {
			case !ok:
				reason = SkipUnknownOwner
			case o.Calendar.Away(in.Now):
				reason = SkipOutOfOffice
			}
			res.Decision.Candidates = append(res.Decision.Candidates, &routingv1.Candidate{
				OwnerId: id, Chosen: reason == "", SkippedBecause: reason, OpenAssignments: int32(dir.Load(id)),
			})
			if reason == "" {
				return id
			}
		}
	case routingv1.ActionKind_ACTION_KIND_OWNER:
		id := r.GetOwnerId()
		reason := skipReason(id, in.Now, dir)
		res.Decision.Candidates = append(res.Decision.Candidates, &routingv1.Candidate{
			OwnerId: id, Chosen: reason == "", SkippedBecause: reason, OpenAssignments: int32(dir.Load(id)),
		})
		if reason == "" {
			return id
		}
	}
	if r.GetPoolId() != "" {
		return pick(r.GetPoolId(), in, dir, res)
	}
	return ""
}

// skipReason says why an owner cannot take a handoff now, or "".
func skipReason(id string, now time.Time, dir Directory) string {
	o, ok := dir.Owner(id)
	if !ok {
		return SkipUnknownOwner
	}
	if o.Calendar.Away(now) {
		return SkipOutOfOffice
	}
	if c := o.Owner.GetCapacity(); c > 0 && dir.Load(id) >= int(c) {
		return SkipAtCapacity
	}
	if !o.Calendar.Working(now) {
		return SkipOffHours
	}
	return ""
}

// mismatch says whether a pool member does not cover the lead's territory or
// segment.
func mismatch(id string, in Input, dir Directory) string {
	o, ok := dir.Owner(id)
	if !ok {
		return ""
	}
	if ts := o.Owner.GetTerritories(); in.Territory != "" && len(ts) > 0 && !slices.Contains(ts, in.Territory) {
		return SkipTerritory
	}
	if ss := o.Owner.GetSegments(); in.Segment != "" && len(ss) > 0 && !slices.Contains(ss, in.Segment) {
		return SkipSegment
	}
	return ""
}

// ErrNoPool is reported when a rule names a pool that does not exist.
var ErrNoPool = errors.New("pool not found")

// pick chooses an owner from a pool. Owners outside working hours are skipped
// while anyone else in the pool is working; if nobody is, the first owner who
// is only off-hours is chosen, so night-time leads are not left unassigned
// (their SLA clock starts at their next working hour anyway).
func pick(poolID string, in Input, dir Directory, res *Result) string {
	pool, ok := dir.Pool(poolID)
	if !ok {
		res.Errors = append(res.Errors, fmt.Errorf("pool %q: %w", poolID, ErrNoPool))
		return ""
	}
	res.Decision.PoolId = poolID
	strategy := pool.GetStrategy()
	if strategy == routingv1.Strategy_STRATEGY_UNSPECIFIED {
		strategy = routingv1.Strategy_STRATEGY_ROUND_ROBIN
	}
	res.Decision.Strategy = strategy
	ids := pool.GetOwnerIds()
	n := len(ids)
	if n == 0 {
		return ""
	}
	cursor := dir.Cursor(poolID)
	order := make([]int, 0, n) // pool indexes in the order they are examined
	var next func(pos int) uint64
	switch strategy {
	case routingv1.Strategy_STRATEGY_WEIGHTED_ROUND_ROBIN:
		// The cursor walks a virtual sequence in which owner i occupies
		// weight(i) consecutive slots; one full cycle assigns exactly in
		// proportion to the weights.
		starts := make([]uint64, n)
		var total uint64
		for i, id := range ids {
			starts[i] = total
			total += uint64(weight(id, dir))
		}
		slot := cursor % total
		first := 0
		for i := range n {
			if slot >= starts[i] {
				first = i
			}
		}
		for k := range n {
			order = append(order, (first+k)%n)
		}
		next = func(pos int) uint64 {
			if pos == 0 {
				return cursor + 1
			}
			idx := order[pos]
			return cursor - slot + starts[idx] + 1 + boolU64(idx < first)*total
		}
	default:
		first := int(cursor % uint64(n))
		for k := range n {
			order = append(order, (first+k)%n)
		}
		next = func(pos int) uint64 { return cursor + uint64(pos) + 1 }
	}

	chosen := -1
	offHours := -1
	reasons := make([]string, len(order))
	for pos, idx := range order {
		reasons[pos] = skipReason(ids[idx], in.Now, dir)
		if reasons[pos] == "" || reasons[pos] == SkipOffHours {
			if why := mismatch(ids[idx], in, dir); why != "" {
				reasons[pos] = why
			}
		}
		if reasons[pos] == SkipOffHours && offHours < 0 {
			offHours = pos
		}
		if reasons[pos] != "" {
			continue
		}
		if strategy == routingv1.Strategy_STRATEGY_LEAST_LOADED {
			if chosen < 0 || dir.Load(ids[idx]) < dir.Load(ids[order[chosen]]) {
				chosen = pos
			}
			continue
		}
		chosen = pos
		break
	}
	if chosen < 0 && offHours >= 0 {
		chosen = offHours
	}
	examined := len(order)
	if strategy != routingv1.Strategy_STRATEGY_LEAST_LOADED && chosen >= 0 && reasons[chosen] == "" {
		examined = chosen + 1
	}
	for pos := range examined {
		id := ids[order[pos]]
		c := &routingv1.Candidate{OwnerId: id, SkippedBecause: reasons[pos], OpenAssignments: int32(dir.Load(id))}
		if pos == chosen {
			c.Chosen = true
			c.SkippedBecause = ""
		}
		res.Decision.Candidates = append(res.Decision.Candidates, c)
	}
	if chosen < 0 {
		return ""
	}
	res.Cursors[poolID] = next(chosen)
	return ids[order[chosen]]
}

func boolU64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func weight(id string, dir Directory) int {
	o, ok := dir.Owner(id)
	if !ok {
		return 1
	}
	w := int(o.Owner.GetWeight())
	switch {
	case w <= 0:
		return 1
	case w > maxWeight:
		return maxWeight
	}
	return w
}
