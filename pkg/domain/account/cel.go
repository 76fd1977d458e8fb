package account

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// Limits that keep a hostile or careless expression from stalling the
// evaluating service.
const (
	// MaxExprLen is the longest expression accepted, in bytes.
	MaxExprLen = 4096
	// CostLimit is the runtime cost budget of one evaluation. Typical criteria
	// cost well under 200; aggregate functions cost 10 to 100 each.
	CostLimit = 20000
)

// ErrCostLimit is returned (wrapped) when an evaluation exceeds CostLimit.
var ErrCostLimit = errors.New("evaluation cost limit exceeded")

// function describes one built-in CEL function.
type function struct {
	name string
	// args are the parameter types; result is the return type.
	args   []*cel.Type
	result *cel.Type
	// window is the index of a window argument validated at compile time, or -1.
	window int
	// cost is the runtime cost charged per call.
	cost uint64
	impl func(ev *Evaluator, args []ref.Val) ref.Val
}

// functions lists every built-in; it is built per Env so that no package
// state is shared.
func builtins() []function {
	s, i, d, ts, b := cel.StringType, cel.IntType, cel.DoubleType, cel.TimestampType, cel.BoolType
	return []function{
		{"count", []*cel.Type{s, s}, i, 1, 10, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[1])
			if err != nil {
				return err
			}
			return types.Int(ev.agg.Count(string(a[0].(types.String)), days, ev.now))
		}},
		{"count_any", []*cel.Type{cel.ListType(s), s}, i, 1, 30, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[1])
			if err != nil {
				return err
			}
			names, errv := stringList(a[0])
			if errv != nil {
				return errv
			}
			var n int64
			for _, name := range names {
				n += ev.agg.Count(name, days, ev.now)
			}
			return types.Int(n)
		}},
		{"count_after_created", []*cel.Type{s, i, i}, i, -1, 10, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.Int(ev.agg.CountAfterCreated(string(a[0].(types.String)), int(a[1].(types.Int)), int(a[2].(types.Int))))
		}},
		{"has_event", []*cel.Type{s}, b, -1, 1, func(ev *Evaluator, a []ref.Val) ref.Val {
			_, ok := ev.agg.Events[string(a[0].(types.String))]
			return types.Bool(ok)
		}},
		{"first_seen", []*cel.Type{s}, ts, -1, 1, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.Timestamp{Time: time.Unix(ev.agg.Events[string(a[0].(types.String))].First, 0).UTC()}
		}},
		{"last_seen", []*cel.Type{s}, ts, -1, 1, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.Timestamp{Time: time.Unix(ev.agg.Events[string(a[0].(types.String))].Last, 0).UTC()}
		}},
		{"days_since", []*cel.Type{s}, i, -1, 1, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.Int(ev.agg.DaysSince(string(a[0].(types.String)), ev.now))
		}},
		{"active_users", []*cel.Type{s}, i, 0, 100, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[0])
			if err != nil {
				return err
			}
			return types.Int(ev.agg.ActiveUsers(days, ev.now))
		}},
		{"active_users_trend", []*cel.Type{s}, d, 0, 200, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[0])
			if err != nil {
				return err
			}
			return types.Double(ev.agg.ActiveUsersTrend(days, ev.now))
		}},
		{"new_users", []*cel.Type{s}, i, 0, 50, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[0])
			if err != nil {
				return err
			}
			return types.Int(ev.agg.NewUsers(days, ev.now))
		}},
		{"features_used", []*cel.Type{s}, i, 0, 30, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[0])
			if err != nil {
				return err
			}
			return types.Int(ev.agg.FeaturesUsed(ev.env.cfg.Features, days, ev.now))
		}},
		{"integrations", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val {
			return types.Int(len(ev.agg.Integrations))
		}},
		{"seats", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val {
			return types.Int(ev.agg.Seats)
		}},
		{"seats_active_ratio", nil, d, -1, 100, func(ev *Evaluator, _ []ref.Val) ref.Val {
			return types.Double(ev.agg.SeatsActiveRatio(ev.now))
		}},
		{"days_since_created", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val {
			c := ev.agg.Created()
			if c == 0 {
				return types.Int(0)
			}
			return types.Int(daysBetween(c, ev.now.Unix()))
		}},
		{"days_since_contract_start", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val {
			if ev.agg.ContractStart == 0 {
				return types.Int(-1)
			}
			if ev.now.Unix() < ev.agg.ContractStart {
				// A contract that starts in the future: negative days.
				return types.Int(-daysUntil(ev.agg.ContractStart, ev.now))
			}
			return types.Int(daysBetween(ev.agg.ContractStart, ev.now.Unix()))
		}},
		{"days_until_contract_end", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val {
			return types.Int(daysUntil(ev.agg.ContractEnd, ev.now))
		}},
		{"trait", []*cel.Type{s}, s, -1, 1, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.String(ev.agg.Traits[string(a[0].(types.String))])
		}},
		{"arr", nil, d, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val { return types.Double(ev.agg.ARR) }},
		{"plan", nil, s, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val { return types.String(ev.agg.Traits["plan"]) }},
		{"segment", nil, s, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val { return types.String(ev.agg.Traits["segment"]) }},
		{"nps", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val { return types.Int(ev.agg.NPS) }},
		{"open_tickets", []*cel.Type{s}, i, -1, 5, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.Int(ev.agg.OpenTickets(strings.ToLower(string(a[0].(types.String)))))
		}},
		{"open_ticket_max_age_days", []*cel.Type{s}, i, -1, 5, func(ev *Evaluator, a []ref.Val) ref.Val {
			return types.Int(ev.agg.OpenTicketMaxAgeDays(strings.ToLower(string(a[0].(types.String))), ev.now))
		}},
		{"trend", []*cel.Type{s, s}, d, 1, 20, func(ev *Evaluator, a []ref.Val) ref.Val {
			days, err := windowArg(a[1])
			if err != nil {
				return err
			}
			return types.Double(ev.agg.Trend(string(a[0].(types.String)), days, ev.now))
		}},
		{"known_users", nil, i, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val {
			return types.Int(len(ev.agg.Users))
		}},
		{"days_since_champion", nil, i, -1, 20, func(ev *Evaluator, _ []ref.Val) ref.Val {
			last := ev.agg.ChampionLastSeen()
			if last == 0 {
				return types.Int(Never)
			}
			return types.Int(daysBetween(last, ev.now.Unix()))
		}},
		{"usage_limit", nil, d, -1, 1, func(ev *Evaluator, _ []ref.Val) ref.Val { return types.Double(ev.agg.UsageLimit) }},
		{"persona_days_since", []*cel.Type{s}, i, -1, 20, func(ev *Evaluator, a []ref.Val) ref.Val {
			last := ev.agg.PersonaLastSeen(string(a[0].(types.String)))
			if last == 0 {
				return types.Int(Never)
			}
			return types.Int(daysBetween(last, ev.now.Unix()))
		}},
	}
}

func windowArg(v ref.Val) (int, ref.Val) {
	days, err := ParseWindow(string(v.(types.String)))
	if err != nil {
		return 0, types.NewErr("%s", err.Error())
	}
	return days, nil
}

func stringList(v ref.Val) ([]string, ref.Val) {
	l, ok := v.(traits.Lister)
	if !ok {
		return nil, types.NewErr("want a list of event names")
	}
	n := int(l.Size().(types.Int))
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		s, ok := l.Get(types.Int(i)).(types.String)
		if !ok {
			return nil, types.NewErr("want a list of event names")
		}
		out = append(out, string(s))
	}
	return out, nil
}

// Env compiles criteria over Aggregates for one Config. It is safe for
// concurrent use.
type Env struct {
	cel   *cel.Env
	cfg   Config
	funcs map[string]function
	// costs by overload id, for the runtime cost tracker.
	costs map[string]uint64
	pool  sync.Pool
	// lateBound keeps CEL's late-bound calls of the built-ins in every
	// program (tests compare the two).
	lateBound bool
}

// NewEnv returns an environment for cfg. opts declare caller variables, e.g.
// cel.Variable("stage", cel.StringType); their values are passed per evaluation.
func NewEnv(cfg Config, opts ...cel.EnvOption) (*Env, error) {
	e := &Env{cfg: cfg, funcs: map[string]function{}, costs: map[string]uint64{}}
	all := []cel.EnvOption{
		cel.ParserExpressionSizeLimit(MaxExprLen),
		cel.ParserRecursionLimit(100),
		// Day counts are ints and ratios doubles: let "days_since(x) > 7.0"
		// and "nps() >= 9.5" compare without a conversion.
		cel.CrossTypeNumericComparisons(true),
		cel.ASTValidators(windowValidator{e}),
	}
	for _, f := range builtins() {
		id := f.name
		for _, t := range f.args {
			id += "_" + strings.NewReplacer("(", "_", ")", "", " ", "").Replace(t.String())
		}
		e.funcs[f.name] = f
		e.costs[id] = f.cost
		all = append(all, cel.Function(f.name, cel.Overload(id, f.args, f.result, cel.LateFunctionBinding())))
	}
	all = append(all, opts...)
	env, err := cel.NewEnv(all...)
	if err != nil {
		return nil, fmt.Errorf("create CEL environment: %w", err)
	}
	e.cel = env
	e.pool.New = func() any { return e.NewEvaluator() }
	return e, nil
}

// Config returns the configuration the environment evaluates with.
func (e *Env) Config() Config { return e.cfg }

// windowValidator rejects literal windows that ParseWindow would reject, so
// that a typo fails when a definition is applied, not on every event.
type windowValidator struct{ env *Env }

// Name implements cel.ASTValidator.
func (windowValidator) Name() string { return "cairn.window" }

// Validate implements cel.ASTValidator.
func (v windowValidator) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *ast.AST, iss *cel.Issues) {
	for _, call := range ast.MatchDescendants(ast.NavigateAST(a), func(e ast.NavigableExpr) bool { return e.Kind() == ast.CallKind }) {
		f, ok := v.env.funcs[call.AsCall().FunctionName()]
		if !ok || f.window < 0 {
			continue
		}
		args := call.AsCall().Args()
		if f.window >= len(args) || args[f.window].Kind() != ast.LiteralKind {
			continue
		}
		s, ok := args[f.window].AsLiteral().(types.String)
		if !ok {
			continue
		}
		if _, err := ParseWindow(string(s)); err != nil {
			iss.ReportErrorAtID(args[f.window].ID(), "%s", err.Error())
		}
	}
}

// dayReach says how far back a built-in reads the daily buckets: perWindow
// times its window argument (trend compares with the window before), or a
// fixed number of days. Built-ins missing here read no buckets, except
// count_after_created, which reads them relative to the account's creation.
var dayReach = map[string]struct{ perWindow, fixed int }{
	"count": {1, 0}, "count_any": {1, 0}, "trend": {2, 0}, "active_users": {1, 0},
	"active_users_trend": {2, 0}, "features_used": {1, 0}, "seats_active_ratio": {0, 30},
}

// Horizon is how many days back from the evaluation day, that day
// included, expr reads the daily buckets (0 when it reads none). ok is false
// when that cannot be told: a window that is not a literal,
// count_after_created, or an expression that does not compile. Aggregates
// decoded with Scratch.UnmarshalFrom from that many days back evaluate expr
// as the whole aggregates do.
func (e *Env) Horizon(expr string) (days int, ok bool) {
	checked, iss := e.cel.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return 0, false
	}
	for _, call := range ast.MatchDescendants(ast.NavigateAST(checked.NativeRep()), func(n ast.NavigableExpr) bool { return n.Kind() == ast.CallKind }) {
		name := call.AsCall().FunctionName()
		if name == "count_after_created" {
			return 0, false
		}
		r, reads := dayReach[name]
		if !reads {
			continue
		}
		if r.perWindow == 0 {
			days = max(days, r.fixed)
			continue
		}
		f := e.funcs[name]
		args := call.AsCall().Args()
		if f.window < 0 || f.window >= len(args) || args[f.window].Kind() != ast.LiteralKind {
			return 0, false
		}
		lit, isStr := args[f.window].AsLiteral().(types.String)
		if !isStr {
			return 0, false
		}
		n, err := ParseWindow(string(lit))
		if err != nil {
			return 0, false
		}
		days = max(days, n*r.perWindow)
	}
	return days, true
}

// Issue is one compile problem at a position in the expression.
type Issue struct {
	// Line and Column are 1-based.
	Line, Column int
	// Message says what is wrong.
	Message string
}

// CompileError lists the problems of one expression.
type CompileError struct {
	// Expr is the expression that failed.
	Expr string
	// Issues are the problems found, with positions.
	Issues []Issue
}

// Error lists the issues as "line:column: message".
func (e *CompileError) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = fmt.Sprintf("%d:%d: %s", is.Line, is.Column, is.Message)
	}
	return strings.Join(parts, "; ")
}

// Kind is what a program returns.
type Kind int

// Program kinds.
const (
	// KindBool programs are criteria.
	KindBool Kind = iota + 1
	// KindNumber programs return an int or a double, read as float64.
	KindNumber
)

// Program is a compiled expression; it is safe for concurrent use.
type Program struct {
	env  *Env
	expr string
	kind Kind
	prg  cel.Program
}

// Expr returns the source expression.
func (p *Program) Expr() string { return p.expr }

// Env returns the environment the program was compiled in; its evaluators
// are the ones that can run the program.
func (p *Program) Env() *Env { return p.env }

// CompileBool compiles a criterion that must return bool.
func (e *Env) CompileBool(expr string) (*Program, error) { return e.compile(expr, KindBool) }

// CompileNumber compiles an expression that must return int or double.
func (e *Env) CompileNumber(expr string) (*Program, error) { return e.compile(expr, KindNumber) }

func (e *Env) compile(expr string, kind Kind) (*Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, &CompileError{Expr: expr, Issues: []Issue{{Line: 1, Column: 1, Message: "expression is empty"}}}
	}
	if len(expr) > MaxExprLen {
		return nil, &CompileError{Expr: expr, Issues: []Issue{{Line: 1, Column: 1, Message: fmt.Sprintf("expression is longer than %d bytes", MaxExprLen)}}}
	}
	checked, iss := e.cel.Compile(expr)
	if iss != nil && iss.Err() != nil {
		ce := &CompileError{Expr: expr}
		for _, er := range iss.Errors() {
			ce.Issues = append(ce.Issues, Issue{Line: er.Location.Line(), Column: er.Location.Column() + 1, Message: er.Message})
		}
		return nil, ce
	}
	out := checked.OutputType()
	switch kind {
	case KindBool:
		if !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
			return nil, &CompileError{Expr: expr, Issues: []Issue{{Line: 1, Column: 1, Message: fmt.Sprintf("expression returns %s, want bool", out)}}}
		}
	case KindNumber:
		if !out.IsExactType(cel.IntType) && !out.IsExactType(cel.DoubleType) && !out.IsExactType(cel.DynType) {
			return nil, &CompileError{Expr: expr, Issues: []Issue{{Line: 1, Column: 1, Message: fmt.Sprintf("expression returns %s, want int or double", out)}}}
		}
	}
	// Runtime cost tracking roughly doubles the price of an evaluation, and
	// a health rescore runs a million of them. It is only needed when the
	// static estimate, which charges every built-in its declared cost,
	// cannot prove that the expression stays within CostLimit.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est, err := e.cel.EstimateCost(checked, costEstimator(e.costs)); err != nil || est.Max > CostLimit {
		opts = append(opts, cel.CostTracking(costEstimator(e.costs)), cel.CostLimit(CostLimit))
	} else if !e.lateBound {
		// Without a cost tracker to feed, built-in calls can skip CEL's
		// late-bound dispatch (see builtinCall).
		opts = append(opts, cel.CustomDecoratorV2(e.bindBuiltins))
	}
	prg, err := e.cel.Program(checked, opts...)
	if err != nil {
		return nil, fmt.Errorf("plan expression %q: %w", expr, err)
	}
	return &Program{env: e, expr: expr, kind: kind, prg: prg}, nil
}

type costEstimator map[string]uint64

// EstimateSize leaves sizes to CEL's defaults.
func (costEstimator) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }

// EstimateCallCost charges each built-in its declared cost, as CallCost
// does at run time.
func (c costEstimator) EstimateCallCost(_, overloadID string, _ *cost.AstNode, _ []cost.AstNode) *cost.CallEstimate {
	if v, ok := c[overloadID]; ok {
		return &cost.CallEstimate{CostEstimate: cost.CostEstimate{Min: v, Max: v}}
	}
	return nil
}

// CallCost charges each built-in its declared cost.
func (c costEstimator) CallCost(_, overloadID string, _ []ref.Val, _ ref.Val) *uint64 {
	if v, ok := c[overloadID]; ok {
		return &v
	}
	return nil
}

// bindBuiltins replaces each planned late-bound call of a built-in with a
// builtinCall.
func (e *Env) bindBuiltins(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok {
		return i, nil
	}
	f, ok := e.funcs[call.Function()]
	if !ok || len(call.Args()) != len(f.args) {
		return i, nil
	}
	return &builtinCall{InterpretableCall: call, f: f, args: call.Args()}, nil
}

// builtinCall calls a built-in directly with the Evaluator the program runs
// on. CEL's late-bound call, which it stands in for, allocates the argument
// slice and a closure, and looks the implementation up by name, on every
// call: a fifth of a journey evaluation. It does what that call does, in the
// same order and with the same errors: strict arguments, the declared
// signature checked at run time, the result's errors labelled with the
// call's node. Where the Evaluator is not at hand (inside a comprehension's
// scope) or a cost tracker runs, the late-bound call does the work.
type builtinCall struct {
	interpreter.InterpretableCall
	f    function
	args []interpreter.InterpretableV2
}

// Eval implements interpreter.Interpretable.
func (c *builtinCall) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, c.Exec)
}

// Exec implements interpreter.InterpretableV2.
func (c *builtinCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	ev, ok := frame.Scope().(*Evaluator)
	if !ok || frame.CostTracker() != nil {
		return c.InterpretableCall.Exec(frame)
	}
	// Arguments go on the evaluator's stack: a built-in call in an argument
	// pushes above them and pops back before the next one is evaluated.
	base := len(ev.stack)
	out := c.call(frame, ev, base)
	clear(ev.stack[base:])
	ev.stack = ev.stack[:base]
	return out
}

func (c *builtinCall) call(frame *interpreter.ExecutionFrame, ev *Evaluator, base int) ref.Val {
	var unk *types.Unknown
	for _, arg := range c.args {
		v := arg.Exec(frame)
		if types.IsError(v) {
			return v
		}
		unk, _ = types.MaybeMergeUnknowns(v, unk)
		ev.stack = append(ev.stack, v)
	}
	if unk != nil {
		return unk
	}
	args := ev.stack[base:]
	for i, t := range c.f.args {
		if !assignable(t, args[i]) {
			return types.NewErrWithNodeID(c.ID(), "no such overload: %s", c.f.name)
		}
	}
	return types.LabelErrNode(c.ID(), c.f.impl(ev, args))
}

// assignable is t.IsAssignableRuntimeType(v), answered without comparing
// type names for the strings and ints most arguments are.
func assignable(t *cel.Type, v ref.Val) bool {
	switch t {
	case cel.StringType:
		if _, ok := v.(types.String); ok {
			return true
		}
	case cel.IntType:
		if _, ok := v.(types.Int); ok {
			return true
		}
	}
	return t.IsAssignableRuntimeType(v)
}

// Evaluator holds the inputs of one evaluation. Reuse one per goroutine to
// evaluate many programs without allocating; it is not safe for concurrent use.
type Evaluator struct {
	env   *Env
	agg   *Aggregates
	now   time.Time
	vars  map[string]any
	funcs map[string]functions.LateBoundOp
	// empty stands in for a nil account so that functions never see nil.
	empty *Aggregates
	// stack holds the arguments of the built-in calls being evaluated.
	stack []ref.Val
}

// NewEvaluator returns an Evaluator bound to the environment's functions.
func (e *Env) NewEvaluator() *Evaluator {
	ev := &Evaluator{env: e, empty: New("", ""), funcs: make(map[string]functions.LateBoundOp, len(e.funcs))}
	for name, f := range e.funcs {
		impl := f.impl
		ev.funcs[name] = func(_ string, args ...ref.Val) ref.Val { return impl(ev, args) }
	}
	ev.agg = ev.empty
	return ev
}

// Reset points the evaluator at an account, an evaluation time and the
// caller's variables.
func (ev *Evaluator) Reset(a *Aggregates, now time.Time, vars map[string]any) {
	if a == nil {
		a = ev.empty
	}
	ev.agg, ev.now, ev.vars = a, now, vars
}

// ResolveName implements interpreter.Activation.
func (ev *Evaluator) ResolveName(name string) (any, bool) {
	v, ok := ev.vars[name]
	return v, ok
}

// Parent implements interpreter.Activation.
func (ev *Evaluator) Parent() interpreter.Activation { return nil }

// ResolveFunction implements interpreter.FunctionActivation: the built-ins
// read the evaluator's current account and time.
func (ev *Evaluator) ResolveFunction(name string) (functions.LateBoundOp, bool) {
	f, ok := ev.funcs[name]
	return f, ok
}

func (p *Program) eval(ev *Evaluator) (ref.Val, error) {
	if ev.env != p.env {
		return nil, fmt.Errorf("evaluate %q: evaluator belongs to another environment", p.expr)
	}
	out, _, err := p.prg.Eval(ev)
	if err != nil {
		if strings.Contains(err.Error(), "cost limit exceeded") {
			return nil, fmt.Errorf("evaluate %q: %w", p.expr, ErrCostLimit)
		}
		return nil, fmt.Errorf("evaluate %q: %w", p.expr, err)
	}
	return out, nil
}

// Bool evaluates a bool program with the evaluator's inputs.
func (p *Program) Bool(ev *Evaluator) (bool, error) {
	out, err := p.eval(ev)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: got %s, want bool", p.expr, out.Type().TypeName())
	}
	return bool(b), nil
}

// Number evaluates a number program with the evaluator's inputs.
func (p *Program) Number(ev *Evaluator) (float64, error) {
	out, err := p.eval(ev)
	if err != nil {
		return 0, err
	}
	switch v := out.(type) {
	case types.Int:
		return float64(v), nil
	case types.Double:
		return float64(v), nil
	case types.Uint:
		return float64(v), nil
	}
	return 0, fmt.Errorf("evaluate %q: got %s, want a number", p.expr, out.Type().TypeName())
}

// EvalBool evaluates a bool program for account a at now. vars holds the
// values of the variables declared in NewEnv.
func (p *Program) EvalBool(a *Aggregates, now time.Time, vars map[string]any) (bool, error) {
	ev := p.env.pool.Get().(*Evaluator)
	defer p.env.pool.Put(ev)
	ev.Reset(a, now, vars)
	defer ev.Reset(nil, time.Time{}, nil)
	return p.Bool(ev)
}

// EvalNumber evaluates a number program for account a at now.
func (p *Program) EvalNumber(a *Aggregates, now time.Time, vars map[string]any) (float64, error) {
	ev := p.env.pool.Get().(*Evaluator)
	defer p.env.pool.Put(ev)
	ev.Reset(a, now, vars)
	defer ev.Reset(nil, time.Time{}, nil)
	return p.Number(ev)
}
