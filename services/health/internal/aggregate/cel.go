package aggregate

import (
	"fmt"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

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
	prg, err := c.env.Program(ast, cel.CostLimit(costLimit))
	if err != nil {
		return nil, fmt.Errorf("plan expression: %w", err)
	}
	return prg, nil
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
	v, _, err := prg.Eval(act.act)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Activation binds one Input for evaluation; build it once per account and
// reuse it for every component.
type Activation struct {
	act cel.FunctionActivation
}

// Activate prepares in for evaluation.
func Activate(in Input) (*Activation, error) {
	a := in.Agg
	now := in.Now
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
	funcs := map[string]cel.LateBoundFunction{
		"count": func(_ string, args ...ref.Val) ref.Val {
			w, bad := win(args[1])
			if bad != nil {
				return bad
			}
			return types.Int(a.Count(now, strArg(args[0]), w))
		},
		"trend": func(_ string, args ...ref.Val) ref.Val {
			w, bad := win(args[1])
			if bad != nil {
				return bad
			}
			return types.Double(a.Trend(now, strArg(args[0]), w))
		},
		"active_users":  withWin(func(w time.Duration) ref.Val { return types.Int(a.ActiveUsers(now, w)) }),
		"new_users":     withWin(func(w time.Duration) ref.Val { return types.Int(a.NewUsers(now, w)) }),
		"features_used": withWin(func(w time.Duration) ref.Val { return types.Int(a.FeaturesUsed(now, w)) }),
		"integrations":  func(string, ...ref.Val) ref.Val { return types.Int(len(a.Integrations)) },
		"seats":         func(string, ...ref.Val) ref.Val { return types.Int(a.Seats) },
		"seats_active_ratio": func(string, ...ref.Val) ref.Val {
			return types.Double(a.SeatsActiveRatio())
		},
		"days_since_created": func(string, ...ref.Val) ref.Val { return types.Double(a.DaysSinceCreated(now)) },
		"days_until_contract_end": func(string, ...ref.Val) ref.Val {
			return types.Double(a.DaysUntilContractEnd(now))
		},
		"nps": func(string, ...ref.Val) ref.Val { return types.Double(a.NPS) },
		"open_tickets": func(_ string, args ...ref.Val) ref.Val {
			return types.Int(a.OpenTickets(strArg(args[0])))
		},
		"open_ticket_max_age_days": func(_ string, args ...ref.Val) ref.Val {
			return types.Double(a.OpenTicketMaxAgeDays(now, strArg(args[0])))
		},
		"trait":      func(_ string, args ...ref.Val) ref.Val { return types.String(a.Traits[strArg(args[0])]) },
		"arr":        func(string, ...ref.Val) ref.Val { return types.Double(a.ARR) },
		"plan":       func(string, ...ref.Val) ref.Val { return types.String(a.Plan) },
		"segment":    func(string, ...ref.Val) ref.Val { return types.String(a.Segment) },
		"days_since": func(_ string, args ...ref.Val) ref.Val { return types.Double(a.DaysSince(now, strArg(args[0]))) },
		"days_since_champion": func(string, ...ref.Val) ref.Val {
			return types.Double(a.DaysSinceChampion(now))
		},
	}
	dis := 0.0
	if !in.EnteredAt.IsZero() {
		dis = days(now.Sub(in.EnteredAt))
	}
	act, err := cel.FunctionVars(map[string]any{"stage": in.Stage, "days_in_stage": dis}, funcs)
	if err != nil {
		return nil, fmt.Errorf("bind account functions: %w", err)
	}
	return &Activation{act: act}, nil
}
