package play

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cairn-dev/cairn/pkg/apierr"
)

// ErrInvalid is what every *Error matches with errors.Is.
var ErrInvalid = errors.New("invalid plays file")

// Problem is one thing wrong with a plays file.
type Problem struct {
	// Line is 1-based; 0 when the problem has no single line (a File built
	// in code, or the file as a whole).
	Line int
	// Path is the field, e.g. "plays[0].when"; "" for the file.
	Path string
	// Message says what is wrong.
	Message string
}

// String formats the problem as "line 5: plays[0].when: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is a refused plays file: every problem found, in file order.
type Error struct {
	Problems []Problem
}

// Error lists every problem, separated by "; ".
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return ErrInvalid.Error()
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return ErrInvalid.Error() + ": " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is match ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Is makes errors.Is(err, apierr.ErrInvalid) hold: a bad file is the
// client's error.
func (e *Error) Is(target error) bool { return target == apierr.ErrInvalid }

// As gives apierr the problems as field violations, so that a client is
// told InvalidArgument with every problem in a BadRequest. The line goes in
// the description, as yamldoc.Error.Message does.
func (e *Error) As(target any) bool {
	fe, ok := target.(**apierr.FieldError)
	if !ok || len(e.Problems) == 0 {
		return false
	}
	vs := make([]apierr.Violation, len(e.Problems))
	for i, p := range e.Problems {
		field := p.Path
		if field == "" {
			field = "file"
		}
		desc := p.Message
		if p.Line > 0 {
			desc = fmt.Sprintf("line %d: %s", p.Line, p.Message)
		}
		vs[i] = apierr.Violation{Field: field, Description: desc}
	}
	*fe = &apierr.FieldError{Prefix: ErrInvalid.Error(), Violations: vs}
	return true
}

// problems collects the problems of one file, finding each path's line.
type problems struct {
	lines map[string]int
	list  []Problem
	// typed are paths the YAML decoder already refused (wrong type): the
	// zero value left there would only add a second, misleading problem.
	typed map[string]bool
}

func (ps *problems) add(path, format string, args ...any) {
	for p := range ps.typed {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return
		}
	}
	ps.list = append(ps.list, Problem{Line: ps.line(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

// line is the line of path, else of the nearest enclosing field that has one.
func (ps *problems) line(path string) int {
	for path != "" {
		if l, ok := ps.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// err returns the problems as an *Error sorted by line (problems without a
// line first), or nil when there are none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	out := dedupe(ps.list)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &Error{Problems: out}
}

func dedupe(list []Problem) []Problem {
	seen := make(map[Problem]bool, len(list))
	out := make([]Problem, 0, len(list))
	for _, p := range list {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
