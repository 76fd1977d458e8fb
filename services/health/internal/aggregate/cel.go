package aggregate

import (
	"fmt"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/cairn-dev/cairn/services/health/internal/model"
)

// Input is what a measure sees: one account's aggregate at an evaluation
// time, plus its current journey stage.
type Input struct {
	// Agg is the account's aggregate.
	Agg *Aggregate
	// Now is the evaluation time; windows end here.
	Now time.Time
	// Stage is the account's current stage id from the stages service ("" if unknown).
	Stage string
	// EnteredAt is when the account entered Stage.
	EnteredAt time.Time
}

// costLimit bounds one evaluation so a hostile expression cannot spin.
const costLimit = 100000

// Compiler compiles CEL measures over Input. It implements model.Compiler.
type Compiler struct {
	env *cel.Env
}

var _ model.Compiler = (*Compiler)(nil)

type fn struct {
	name string
	args []*cel.Type
	out  *cel.Type
}

// functions are the account functions measures may call; their
// implementations are bound per evaluation in activation.
func functions() []fn {
	s, d, i := cel.StringType, cel.DoubleType, cel.IntType
	return []fn{
		{"count", []*cel.Type{s, s}, i},
		{"active_users", []*cel.Type{s}, i},
		{"new_users", []*cel.Type{s}, i},
		{"features_used", []*cel.Type{s}, i},
		{"integrations", nil, i},
		{"seats", nil, i},
		{"seats_active_ratio", nil, d},
		{"days_since_created", nil, d},
		{"days_until_contract_end", nil, d},
		{"nps", nil, d},
		{"open_tickets", []*cel.Type{s}, i},
		{"open_ticket_max_age_days", []*cel.Type{s}, d},
		{"trend", []*cel.Type{s, s}, d},
		{"trait", []*cel.Type{s}, s},
		{"arr", nil, d},
		{"plan", nil, s},
		{"segment", nil, s},
		{"days_since", []*cel.Type{s}, d},
		{"days_since_champion", nil, d},
	}
}

// NewCompiler builds the CEL environment.
func NewCompiler() (*Compiler, error) {
	opts := []cel.EnvOption{
		cel.Variable("stage", cel.StringType),
		cel.Variable("days_in_stage", cel.DoubleType),
	}
	for _, f := range functions() {
		opts = append(opts, cel.Function(f.name, cel.Overload(f.name+"_overload", f.args, f.out, cel.LateFunctionBinding())))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("build cel environment: %w", err)
	}
	return &Compiler{env: env}, nil
}

func (c *Compiler) program(expr string, want ...*cel.Type) (cel.Program, error) {
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	ok := false
	for _, w := range want {
		if ast.OutputType().IsExactType(w) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("expression returns %s, want %v", ast.OutputType(), want)
	}
	// Runtime cost tracking roughly doubles the price of an evaluation, and
	// a full rescore runs a million of them. It is only needed when the
	// static estimate cannot prove the expression stays within the limit;
	// measures over the account functions nearly always can.
	var opts []cel.ProgramOption
	if est, err := c.env.EstimateCost(ast, noEstimates{}); err != nil || est.Max > costLimit {
		opts = append(opts, cel.CostLimit(costLimit))
	}
	prg, err := c.env.Program(ast, opts...)
	if err != nil {
		return nil, fmt.Errorf("plan expression: %w", err)
	}
	return prg, nil
}

// noEstimates leaves every size and call cost to CEL's defaults, which is
// also what the runtime tracker charges for the account functions.
type noEstimates struct{}

func (noEstimates) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }

func (noEstimates) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// Number compiles an expression yielding int or double.
func (c *Compiler) Number(expr string) (model.Measure, error) {
	prg, err := c.program(expr, cel.DoubleType, cel.IntType)
	if err != nil {
		return nil, err
	}
	return func(in any) (float64, error) {
		v, err := eval(prg, in)
		if err != nil {
			return 0, err
		}
		switch x := v.(type) {
		case types.Double:
			return float64(x), nil
		case types.Int:
			return float64(x), nil
		}
		return 0, fmt.Errorf("measure returned %s", v.Type())
	}, nil
}

// Bool compiles an expression yielding bool.
func (c *Compiler) Bool(expr string) (model.Condition, error) {
	prg, err := c.program(expr, cel.BoolType)
	if err != nil {
		return nil, err
	}
	return func(in any) (bool, error) {
		v, err := eval(prg, in)
		if err != nil {
			return false, err
		}
		b, ok := v.(types.Bool)
		if !ok {
			return false, fmt.Errorf("condition returned %s", v.Type())
		}
		return bool(b), nil
	}, nil
}

func eval(prg cel.Program, in any) (ref.Val, error) {
	act, ok := in.(*Activation)
	if !ok {
		return nil, fmt.Errorf("measure input is %T, want *aggregate.Activation", in)
	}
	v, _, err := prg.Eval(act)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Activation binds one Input for evaluation. Its function bindings are
// built once and read the current input when called, so one Activation can
// be kept per goroutine and Reset for each account (a full rescore binds a
// hundred thousand accounts); it is not safe for concurrent use.
type Activation struct {
	in    Input
	stage types.String
	dis   types.Double
	funcs map[string]cel.LateBoundFunction
}

var _ interpreter.FunctionActivation = (*Activation)(nil)

// NewActivation returns an Activation bound to no input yet; Reset binds one.
func NewActivation() *Activation {
	a := &Activation{}
	a.funcs = a.bind()
	return a
}

// Activate prepares in for evaluation.
func Activate(in Input) (*Activation, error) {
	a := NewActivation()
	a.Reset(in)
	return a, nil
}

// Reset binds in, replacing the previous input.
func (a *Activation) Reset(in Input) {
	a.in = in
	a.stage = types.String(in.Stage)
	a.dis = 0
	if !in.EnteredAt.IsZero() {
		a.dis = types.Double(days(in.Now.Sub(in.EnteredAt)))
	}
}

// ResolveName implements interpreter.Activation: the variables stage and days_in_stage.
func (a *Activation) ResolveName(name string) (any, bool) {
	switch name {
	case "stage":
		return a.stage, true
	case "days_in_stage":
		return a.dis, true
	}
	return nil, false
}

// Parent implements interpreter.Activation; there is none.
func (a *Activation) Parent() interpreter.Activation { return nil }

// ResolveFunction implements interpreter.FunctionActivation: the account functions.
func (a *Activation) ResolveFunction(name string) (cel.LateBoundFunction, bool) {
	f, ok := a.funcs[name]
	return f, ok
}

// bind builds the account functions over a's current input.
func (a *Activation) bind() map[string]cel.LateBoundFunction {
	win := func(v ref.Val) (time.Duration, ref.Val) {
		s, _ := v.(types.String)
		w, err := ParseWindow(string(s))
		if err != nil {
			return 0, types.NewErr("%s", err.Error())
		}
		return w, nil
	}
	strArg := func(v ref.Val) string { s, _ := v.(types.String); return string(s) }
	withWin := func(f func(w time.Duration) ref.Val) cel.LateBoundFunction {
		return func(_ string, args ...ref.Val) ref.Val {
			w, bad := win(args[0])
			if bad != nil {
				return bad
			}
			return f(w)
		}
	}
	return map[string]cel.LateBoundFunction{
		"count": func(_ string, args ...ref.Val) ref.Val {
			w, bad := win(args[1])
			if bad != nil {
				return bad
			}
			return types.Int(a.in.Agg.Count(a.in.Now, strArg(args[0]), w))
		},
		"trend": func(_ string, args ...ref.Val) ref.Val {
			w, bad := win(args[1])
			if bad != nil {
				return bad
			}
			return types.Double(a.in.Agg.Trend(a.in.Now, strArg(args[0]), w))
		},
		"active_users":  withWin(func(w time.Duration) ref.Val { return types.Int(a.in.Agg.ActiveUsers(a.in.Now, w)) }),
		"new_users":     withWin(func(w time.Duration) ref.Val { return types.Int(a.in.Agg.NewUsers(a.in.Now, w)) }),
		"features_used": withWin(func(w time.Duration) ref.Val { return types.Int(a.in.Agg.FeaturesUsed(a.in.Now, w)) }),
		"integrations":  func(string, ...ref.Val) ref.Val { return types.Int(len(a.in.Agg.Integrations)) },
		"seats":         func(string, ...ref.Val) ref.Val { return types.Int(a.in.Agg.Seats) },
		"seats_active_ratio": func(string, ...ref.Val) ref.Val {
			return types.Double(a.in.Agg.SeatsActiveRatio())
		},
		"days_since_created": func(string, ...ref.Val) ref.Val { return types.Double(a.in.Agg.DaysSinceCreated(a.in.Now)) },
		"days_until_contract_end": func(string, ...ref.Val) ref.Val {
			return types.Double(a.in.Agg.DaysUntilContractEnd(a.in.Now))
		},
		"nps": func(string, ...ref.Val) ref.Val { return types.Double(a.in.Agg.NPS) },
		"open_tickets": func(_ string, args ...ref.Val) ref.Val {
			return types.Int(a.in.Agg.OpenTickets(strArg(args[0])))
		},
		"open_ticket_max_age_days": func(_ string, args ...ref.Val) ref.Val {
			return types.Double(a.in.Agg.OpenTicketMaxAgeDays(a.in.Now, strArg(args[0])))
		},
		"trait":   func(_ string, args ...ref.Val) ref.Val { return types.String(a.in.Agg.Traits[strArg(args[0])]) },
		"arr":     func(string, ...ref.Val) ref.Val { return types.Double(a.in.Agg.ARR) },
		"plan":    func(string, ...ref.Val) ref.Val { return types.String(a.in.Agg.Plan) },
		"segment": func(string, ...ref.Val) ref.Val { return types.String(a.in.Agg.Segment) },
		"days_since": func(_ string, args ...ref.Val) ref.Val {
			return types.Double(a.in.Agg.DaysSince(a.in.Now, strArg(args[0])))
		},
		"days_since_champion": func(string, ...ref.Val) ref.Val {
			return types.Double(a.in.Agg.DaysSinceChampion(a.in.Now))
		},
	}
}
