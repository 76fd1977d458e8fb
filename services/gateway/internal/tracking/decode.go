// Package tracking implements Cairn's Segment-compatible HTTP tracking API
// (/v1/track, /v1/identify, /v1/group, /v1/page, /v1/screen, /v1/alias,
// /v1/batch and /v1/import) on top of IngestionService.Ingest.
//
// Segment's wire format is decoded by the shared pkg/segment, so that the
// gateway and the CLI's NDJSON import agree on it; this package adds keys,
// limits, forwarding and Segment-style responses.
package tracking

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/segment"
)

// ErrUnparseable means the body is not the JSON document the endpoint
// expects; the handler answers it with 400.
var ErrUnparseable = errors.New("unparseable body")

// Problem is one item the decoder could not turn into an event.
type Problem struct {
	// Index of the item in the batch (0 for single calls).
	Index int
	// Field is the offending field, relative to the item, e.g. "timestamp".
	Field string
	// Reason says what is wrong.
	Reason string
}

// Decoded is the result of decoding one request body.
type Decoded struct {
	// WriteKey from the body, if any.
	WriteKey string
	// Events that decoded, in order.
	Events []*ingestionv1.Event
	// Index[i] is the position of Events[i] in the request's batch.
	Index []int
	// Problems lists items that did not decode.
	Problems []Problem
}

// DecodeCall decodes the body of a single call of type typ ("track",
// "identify", ...). A body that is not a JSON object is ErrUnparseable; a bad
// field is a Problem, so the response can name it like a batch rejection.
func DecodeCall(typ string, body []byte) (Decoded, error) {
	ev, err := segment.DecodeCall(typ, body)
	if err != nil {
		var fe *segment.FieldError
		if !errors.As(err, &fe) || fe.Field == "" {
			return Decoded{}, fmt.Errorf("%w: %v", ErrUnparseable, err)
		}
		return Decoded{WriteKey: segment.WriteKey(body), Problems: []Problem{{Field: fe.Field, Reason: fe.Reason}}}, nil
	}
	return Decoded{WriteKey: segment.WriteKey(body), Events: []*ingestionv1.Event{ev}, Index: []int{0}}, nil
}

// DecodeBatch decodes a /v1/batch (or /v1/import) body. Only an unusable
// envelope is ErrUnparseable; bad items become Problems.
func DecodeBatch(body []byte) (Decoded, error) {
	b, err := segment.DecodeBatch(patchBatch(body))
	if err != nil {
		return Decoded{}, fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	d := Decoded{WriteKey: b.WriteKey, Events: b.Events, Index: b.Indexes}
	for _, fe := range b.Errors {
		d.Problems = append(d.Problems, Problem{Index: fe.Index, Field: itemField(fe.Field, fe.Index), Reason: fe.Reason})
	}
	return d, nil
}

// itemField strips the "batch[i]" prefix: rejections carry the index already.
func itemField(field string, i int) string {
	rest, ok := strings.CutPrefix(field, fmt.Sprintf("batch[%d]", i))
	if !ok {
		return field
	}
	return strings.TrimPrefix(rest, ".")
}

// patchBatch works around pkg/segment.DecodeBatch (as of dfec5d3) rejecting
// every item that has no "context" (or "integrations") when the batch has
// none either: its merge then stores a nil value that fails as "not a JSON
// object". Giving such items an empty object keeps their meaning. Batches
// with non-empty top-level context and integrations pass through untouched,
// and so does anything unparseable, which DecodeBatch then reports.
func patchBatch(body []byte) []byte {
	var env map[string]json.RawMessage
	if json.Unmarshal(body, &env) != nil || env == nil {
		return body
	}
	needCtx, needInteg := isEmptyObject(env["context"]), isEmptyObject(env["integrations"])
	if !needCtx && !needInteg {
		return body
	}
	var items []json.RawMessage
	if json.Unmarshal(env["batch"], &items) != nil {
		return body
	}
	changed := false
	for i, it := range items {
		// Only the presence of the two keys matters, so decode just those.
		var has struct {
			Context      *json.RawMessage `json:"context"`
			Integrations *json.RawMessage `json:"integrations"`
		}
		it = bytes.TrimSpace(it)
		if len(it) < 2 || it[0] != '{' || json.Unmarshal(it, &has) != nil {
			continue
		}
		var add []byte
		if needCtx && has.Context == nil {
			add = append(add, `"context":{},`...)
		}
		if needInteg && has.Integrations == nil {
			add = append(add, `"integrations":{},`...)
		}
		if add == nil {
			continue
		}
		rest := bytes.TrimSpace(it[1:])
		if rest[0] == '}' { // empty object: no member follows, so drop the comma
			add = add[:len(add)-1]
		}
		items[i] = append(append([]byte{'{'}, add...), rest...)
		changed = true
	}
	if !changed {
		return body
	}
	// Reassemble by hand: every piece is already valid JSON, and re-marshaling
	// would re-validate and re-compact the whole body.
	out := make([]byte, 0, len(body)+len(items)*32)
	out = append(out, '{')
	for k, v := range env {
		if k == "batch" {
			continue
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return body
		}
		out = append(append(append(append(out, kb...), ':'), v...), ',')
	}
	out = append(out, `"batch":[`...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, ']', '}')
}

// isEmptyObject reports whether raw is absent, null or an object with no keys.
func isEmptyObject(raw json.RawMessage) bool {
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && len(m) == 0
}
