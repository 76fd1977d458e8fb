package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/cairn-dev/cairn/pkg/jsonpos"
)

// FieldNamingJSON is the REST facade's JSON marshaler with request bodies
// that do not decode refused naming the field, e.g.
// "events[0].properties.seats: number 1e400 is out of range", instead of
// protojson's "(line 1:83): invalid google.protobuf.Value: 1e400". Bodies
// that decode are decoded exactly as by the wrapped marshaler.
type FieldNamingJSON struct {
	runtime.Marshaler
}

// maxJSONDepth is protojson's nesting limit (its RecursionLimit default).
const maxJSONDepth = 10000

// NewDecoder reads the whole body (the gateway bounds it), then decodes it
// with the wrapped marshaler.
func (m FieldNamingJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		body, err := io.ReadAll(r)
		if err != nil {
			return err // the body limit's error, answered with 413
		}
		err = m.Marshaler.NewDecoder(bytes.NewReader(body)).Decode(v)
		if err == nil || errors.Is(err, io.EOF) {
			return err
		}
		return BodyError(body, err)
	})
}

// position matches the "(line 1:83)" of protojson's errors.
var position = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// BodyError rewrites err, from decoding the JSON body, to name the field
// where decoding stopped when it can tell.
func BodyError(body []byte, err error) error {
	// encoding/json (which the marshaler reads the body with) and protojson
	// count from the first byte of the value, after leading whitespace.
	doc := bytes.TrimLeft(body, " \t\r\n")
	if off, ok := deeperThan(doc, maxJSONDepth); ok {
		return fmt.Errorf("%s: nested more than %d levels deep", orBody(jsonpos.Path(doc, off, 3)), maxJSONDepth)
	}
	msg := strings.TrimPrefix(err.Error(), "proto: ")
	loc := position.FindStringSubmatchIndex(msg)
	if loc == nil {
		return err
	}
	line, _ := strconv.Atoi(msg[loc[2]:loc[3]])
	col, _ := strconv.Atoi(msg[loc[4]:loc[5]])
	off := jsonpos.Offset(doc, line, col)
	reason := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(msg[loc[1]:]), ":"))
	if n, ok := numberAt(doc, off); ok {
		if _, perr := strconv.ParseFloat(n, 64); errors.Is(perr, strconv.ErrRange) {
			reason = fmt.Sprintf("number %s is out of range (more than a 64-bit float holds)", n)
		}
	}
	return fmt.Errorf("%s: %s", orBody(jsonpos.Path(doc, off, 0)), reason)
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// numberAt returns the JSON number starting at off, if one does.
func numberAt(doc []byte, off int) (string, bool) {
	end := off
	for end < len(doc) && strings.IndexByte("+-.0123456789eE", doc[end]) >= 0 {
		end++
	}
	if end == off || end-off > 64 {
		return "", false
	}
	return string(doc[off:end]), true
}

// deeperThan returns the offset of the first object or array nested more
// than limit deep, skipping strings.
func deeperThan(doc []byte, limit int) (int, bool) {
	depth := 0
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '{', '[':
			depth++
			if depth > limit {
				return i, true
			}
		case '}', ']':
			depth--
		case '"':
			for i++; i < len(doc) && doc[i] != '"'; i++ {
				if doc[i] == '\\' {
					i++
				}
			}
		}
	}
	return 0, false
}
