// Package yamldoc checks a definition file (journey, health model, routing
// config) for what every Cairn applier refuses before decoding it: more than
// one YAML document, which the decoders would silently cut to the first,
// and numbers that are NaN, infinite or beyond a 64-bit float, which no
// score, weight or threshold can mean. Errors name the line and the field.
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a refused file: where, and why.
type Error struct {
	// Line is 1-based; 0 when the problem has no single line.
	Line int
	// Path is the field, e.g. "components[0].weight"; "" for the file.
	Path string
	// Reason says what is wrong.
	Reason string
}

// Error formats the error as "line 5: components[0].weight: reason".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Message is Error without the path, for appliers that report the path in
// a field of their own.
func (e *Error) Message() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return e.Reason
}

// MultiDocument is the reason a file with a second document is refused.
const MultiDocument = "a second YAML document: multi-document files are not supported; apply one definition per file"

// Check returns an *Error when data holds a second non-empty YAML document
// or a number that is NaN, infinite or out of range, and nil otherwise. A
// first document that does not parse passes: the applier's own decoder
// reports that, as it always has.
func Check(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &Error{Reason: MultiDocument + " (it does not parse either: " + err.Error() + ")"}
		}
		if !empty(&next) {
			return &Error{Line: next.Line, Reason: MultiDocument}
		}
	}
	return finite(&doc, "", 0)
}

// empty reports a document with nothing in it (a trailing "---").
func empty(doc *yaml.Node) bool {
	for _, n := range doc.Content {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!null" || n.Value != "" {
			return false
		}
	}
	return true
}

// finite walks n for numbers no applier can take. Aliases are not
// followed: their anchor is checked where it is defined.
func finite(n *yaml.Node, path string, depth int) error {
	if depth > 1000 {
		// The path of the innermost node would be a thousand "[0]"s: name
		// where the nesting starts instead.
		if len(path) > 64 {
			path = path[:64] + "…"
		}
		return &Error{Line: n.Line, Path: path, Reason: "nested more than 1000 levels deep"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := finite(c, path, depth+1); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := finite(c, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if n.Content[i].Kind != yaml.ScalarNode {
				key = "?"
			}
			p := key
			if path != "" {
				p = path + "." + key
			}
			if err := finite(n.Content[i+1], p, depth+1); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return number(n, path)
	}
	return nil
}

// number refuses a float scalar that is NaN or infinite (.nan, .inf,
// -.Inf), and a plain scalar that reads as a number too large for a 64-bit
// float (1e400, which YAML resolves to a string).
func number(n *yaml.Node, path string) error {
	switch tag := n.ShortTag(); {
	case tag == "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			if _, perr := strconv.ParseFloat(n.Value, 64); errors.Is(perr, strconv.ErrRange) {
				return &Error{Line: n.Line, Path: path, Reason: fmt.Sprintf("number %s is out of range (more than a 64-bit float holds)", n.Value)}
			}
			return nil // the applier reports what it cannot decode
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return &Error{Line: n.Line, Path: path, Reason: fmt.Sprintf("%s is not a finite number", n.Value)}
		}
	case tag == "!!str" && n.Style == 0:
		if _, err := strconv.ParseFloat(n.Value, 64); errors.Is(err, strconv.ErrRange) {
			return &Error{Line: n.Line, Path: path, Reason: fmt.Sprintf("number %s is out of range (more than a 64-bit float holds)", n.Value)}
		}
	}
	return nil
}
