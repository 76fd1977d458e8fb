package rules

import (
	"fmt"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/parser"

	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// Explaining PQL rules: a prospect's or trial's lead fit is each rule
// evaluated for the account, with the rule's top-level conjuncts ticked
// off one by one, as the stages service shows a stage's criteria.

// Criterion is one top-level conjunct of a PQL rule's condition, evaluated
// on its own.
type Criterion struct {
	// Expr is the conjunct as CEL source, unparsed from the condition.
	Expr string
	// Met is whether it holds.
	Met bool
	// Err is its evaluation error; it is then not met.
	Err error
}

// RuleFit is one PQL rule evaluated for an account.
type RuleFit struct {
	// Name and Condition are the rule's.
	Name, Condition string
	// Holds is whether the whole condition holds.
	Holds bool
	// Err is the condition's evaluation error; it then does not hold.
	Err error
	// Criteria are the condition's top-level && conjuncts, in source order;
	// one when it has none.
	Criteria []Criterion
}

// ExplainPQL evaluates every PQL rule for p at p.At(), in config order, and
// each of its top-level conjuncts on its own. A conjunct may fail where the whole
// condition does not: `has(account.plan) && account.plan == "trial"`
// short-circuits, but its second conjunct alone errors on an account
// without a plan; that conjunct is reported not met, with the error.
func (e *Engine) ExplainPQL(p Product) []RuleFit {
	agg, vars := p.inputs()
	at := p.At()
	out := make([]RuleFit, 0, len(e.pql))
	for _, r := range e.pql {
		f := RuleFit{Name: r.name, Condition: r.prg.Expr()}
		f.Holds, f.Err = r.prg.EvalBool(agg, at, vars)
		if f.Err != nil {
			f.Holds = false
		}
		f.Criteria = explainConjuncts(r.prg, agg, at, vars)
		out = append(out, f)
	}
	return out
}

// explainConjuncts evaluates each top-level conjunct of prg's condition.
func explainConjuncts(prg *account.Program, agg *account.Aggregates, at time.Time, vars map[string]any) []Criterion {
	parts, err := Conjuncts(prg.Expr())
	if err != nil {
		return []Criterion{{Expr: prg.Expr(), Err: err}}
	}
	out := make([]Criterion, 0, len(parts))
	for _, part := range parts {
		c := Criterion{Expr: part}
		cp, err := prg.Env().CompileBool(part)
		if err != nil {
			c.Err = fmt.Errorf("compile criterion: %w", err)
		} else if c.Met, c.Err = cp.EvalBool(agg, at, vars); c.Err != nil {
			c.Met = false
		}
		out = append(out, c)
	}
	return out
}

// parseEnv parses conditions for splitting. Parsing needs no declarations;
// the limits are those of pkg/domain/account's environment.
var parseEnv = sync.OnceValues(func() (*cel.Env, error) {
	// Macro calls are tracked so that `has(x.y)` and `list.exists(...)`
	// unparse as written, not as their expansion.
	return cel.NewEnv(cel.ParserExpressionSizeLimit(account.MaxExprLen), cel.ParserRecursionLimit(100), cel.EnableMacroCallTracking())
})

// Conjuncts splits a CEL condition at its top-level && operators and
// returns each operand as CEL source, in source order: `a && (b || c) &&
// d` gives `a`, `b || c` and `d`. A condition without a top-level && is
// its own only conjunct. The parts are unparsed from the parsed condition,
// so spacing and quotes are normalised.
func Conjuncts(expr string) ([]string, error) {
	env, err := parseEnv()
	if err != nil {
		return nil, fmt.Errorf("build CEL parser: %w", err)
	}
	parsed, iss := env.Parse(expr)
	if err := iss.Err(); err != nil {
		return nil, fmt.Errorf("parse condition: %w", err)
	}
	native := parsed.NativeRep()
	var parts []ast.Expr
	// CEL's parser balances a chain of && into a tree of binary calls;
	// walking it depth first, left to right, restores source order.
	var walk func(x ast.Expr)
	walk = func(x ast.Expr) {
		if x.Kind() == ast.CallKind {
			if call := x.AsCall(); call.FunctionName() == operators.LogicalAnd && !call.IsMemberFunction() {
				for _, arg := range call.Args() {
					walk(arg)
				}
				return
			}
		}
		parts = append(parts, x)
	}
	walk(native.Expr())
	out := make([]string, 0, len(parts))
	for _, x := range parts {
		src, err := parser.Unparse(x, native.SourceInfo())
		if err != nil {
			return nil, fmt.Errorf("unparse condition: %w", err)
		}
		out = append(out, src)
	}
	return out, nil
}
