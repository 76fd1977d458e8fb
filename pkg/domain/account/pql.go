package account

import (
	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

// PQLConfig is how PQL rules read the aggregates: features_used counts the
// event vocabulary's features, as health's default model does, so page
// views, content views and lifecycle events are not feature adoption.
var PQLConfig = Config{Features: vocab.Features()}

// NewPQLEnv is the environment of routing's PQL rules: the aggregate
// functions plus the product-signal variables `status`, `stage`,
// `previous_stage`, `health_band`, `health_score`, `signals` and `account`.
// Routing compiles its rules with it, and the demo generator with it finds
// when the demo's rules start to hold, so the two cannot disagree.
func NewPQLEnv() (*Env, error) {
	return NewEnv(PQLConfig,
		cel.Variable("status", cel.StringType),
		cel.Variable("stage", cel.StringType),
		cel.Variable("previous_stage", cel.StringType),
		cel.Variable("health_band", cel.StringType),
		cel.Variable("health_score", cel.DoubleType),
		cel.Variable("signals", cel.ListType(cel.StringType)),
		cel.Variable("account", cel.MapType(cel.StringType, cel.DynType)),
	)
}

// StatusGuard returns the lifecycle statuses a PQL condition (compiled in
// NewPQLEnv's environment) compares the `status` variable with in its
// top-level conjuncts, `status == "trial" && ...` (either operand order):
// for an account whose status differs from one of them the condition is
// false, with no error (CEL's && is false when any operand is, whatever
// the others give), so it need not be evaluated. Nil when it has none or
// does not parse.
func (e *Env) StatusGuard(expr string) []string {
	parsed, iss := e.cel.Parse(expr)
	if iss != nil && iss.Err() != nil {
		return nil
	}
	var out []string
	var walk func(x ast.Expr)
	walk = func(x ast.Expr) {
		if x.Kind() != ast.CallKind {
			return
		}
		call := x.AsCall()
		if call.IsMemberFunction() || len(call.Args()) != 2 {
			return
		}
		args := call.Args()
		switch call.FunctionName() {
		case operators.LogicalAnd:
			walk(args[0])
			walk(args[1])
		case operators.Equals:
			if s, ok := statusLiteral(args[0], args[1]); ok {
				out = append(out, s)
			} else if s, ok := statusLiteral(args[1], args[0]); ok {
				out = append(out, s)
			}
		}
	}
	// A top-level ident is never bound by a comprehension (those bind
	// inside their own expression only), so `status` is the variable.
	walk(parsed.NativeRep().Expr())
	return out
}

// statusLiteral returns lit's string when id is the `status` variable and
// lit a string literal.
func statusLiteral(id, lit ast.Expr) (string, bool) {
	if id.Kind() != ast.IdentKind || id.AsIdent() != "status" || lit.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := lit.AsLiteral().(types.String)
	return string(s), ok
}
