package account

import (
	"fmt"
	"slices"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// eventArgs are the functions whose first argument names events: a string,
// or for count_any a list of strings.
var eventArgs = map[string]bool{
	"count": true, "count_after_created": true, "count_any": true, "has_event": true,
	"first_seen": true, "last_seen": true, "days_since": true, "trend": true,
}

// EventNames returns the event names expr reads by literal (has_event("x"),
// count_any(["a", "b"], "30d"), ...), sorted and without repeats, leaving
// out the wildcards EventAny ("*") and "" (any product event). It is how a
// test holds a definition's expressions to the event vocabulary.
func (e *Env) EventNames(expr string) ([]string, error) {
	checked, iss := e.cel.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("compile %q: %w", expr, iss.Err())
	}
	var out []string
	add := func(n ast.Expr) {
		if n.Kind() != ast.LiteralKind {
			return
		}
		if s, ok := n.AsLiteral().(types.String); ok && s != EventAny && s != "" {
			out = append(out, string(s))
		}
	}
	for _, call := range ast.MatchDescendants(ast.NavigateAST(checked.NativeRep()), func(n ast.NavigableExpr) bool { return n.Kind() == ast.CallKind }) {
		c := call.AsCall()
		if !eventArgs[c.FunctionName()] || len(c.Args()) == 0 {
			continue
		}
		switch a := c.Args()[0]; a.Kind() {
		case ast.LiteralKind:
			add(a)
		case ast.ListKind:
			for _, el := range a.AsList().Elements() {
				add(el)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
