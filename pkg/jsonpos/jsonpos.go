// Package jsonpos names the place in a JSON document where a decoder
// stopped. Decoders report a byte offset (or a line and column); a client
// needs the field, e.g. "batch[3].properties.plan", to fix its request.
package jsonpos

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// frame is one open object or array on the way to the offset.
type frame struct {
	array bool
	index int // array: the element being read
	// key is the member being read of an object, once its key has started.
	key    []byte
	hasKey bool
}

// Path returns the path of the value of doc that holds byte offset off:
// object members as ".key" (the key as sent, with invalid UTF-8 replaced by
// U+FFFD; the empty key as `[""]`), array elements as "[i]", without a
// leading dot, e.g. "events[0].properties.plan". An offset inside a key names that member.
// doc need only be well-formed JSON up to off. max, when positive, keeps
// only the first max segments. The top level is "".
func Path(doc []byte, off, max int) string {
	if off > len(doc) {
		off = len(doc)
	}
	var stack []frame
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return &stack[len(stack)-1]
	}
	for i := 0; i < off; i++ {
		switch c := doc[i]; c {
		case '{':
			stack = append(stack, frame{})
		case '[':
			stack = append(stack, frame{array: true})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if f := top(); f != nil {
				if f.array {
					f.index++
				} else {
					f.key, f.hasKey = nil, false
				}
			}
		case '"':
			end := stringEnd(doc, i)
			if f := top(); f != nil && !f.array && !f.hasKey {
				// A key: it names the member even when off lies inside it.
				f.key, f.hasKey = unquote(doc[i+1:min(end, len(doc))]), true
				if end > off {
					end = off
				}
			}
			i = end // the closing quote; the loop steps past it
		}
	}
	var b strings.Builder
	n := 0
	for _, f := range stack {
		if max > 0 && n == max {
			break
		}
		switch {
		case f.array:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		case f.hasKey && len(f.key) == 0:
			b.WriteString(`[""]`)
		case f.hasKey:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.Write(f.key)
		default:
			continue // between members: the object itself
		}
		n++
	}
	return b.String()
}

// stringEnd returns the index of the closing quote of the string opening at
// i, or len(doc) when it is not closed.
func stringEnd(doc []byte, i int) int {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(doc)
}

// unquote decodes a key's JSON escapes well enough to name it: invalid
// UTF-8 becomes U+FFFD, and a key with a broken escape is kept as sent.
func unquote(raw []byte) []byte {
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err == nil {
		return []byte(s)
	}
	return []byte(strings.ToValidUTF8(string(raw), "\uFFFD"))
}

// Offset converts a 1-based line and column, the column counted in runes
// (as protojson's errors give them), to a byte offset of doc.
func Offset(doc []byte, line, col int) int {
	i := 0
	for l := 1; l < line && i < len(doc); i++ {
		if doc[i] == '\n' {
			l++
		}
	}
	for c := 1; c < col && i < len(doc); c++ {
		_, size := utf8.DecodeRune(doc[i:])
		i += size
	}
	return i
}
