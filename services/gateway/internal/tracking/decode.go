// Package tracking implements Cairn's Segment-compatible HTTP tracking API
// (/v1/track, /v1/identify, /v1/group, /v1/page, /v1/screen, /v1/alias,
// /v1/batch and /v1/import) on top of IngestionService.Ingest.
//
// Segment's wire format is decoded by the shared pkg/domain/segment, so that the
// gateway and the CLI's NDJSON import agree on it; this package adds keys,
// limits, forwarding and Segment-style responses.
package tracking

import (
	"errors"
	"fmt"
	"strings"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/segment"
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
// "identify", ...). A body that is not a JSON object, or not valid UTF-8, or
// nested past the limit is ErrUnparseable (naming the field where it can);
// a bad field is a Problem, so the response can name it like a batch
// rejection.
func DecodeCall(typ string, body []byte) (Decoded, error) {
	ev, err := segment.DecodeCall(typ, body)
	if err != nil {
		var fe *segment.FieldError
		if !errors.As(err, &fe) || fe.Field == "" || errors.Is(err, segment.ErrMalformed) {
			return Decoded{}, fmt.Errorf("%w: %w", ErrUnparseable, err)
		}
		return Decoded{WriteKey: segment.WriteKey(body), Problems: []Problem{{Field: fe.Field, Reason: fe.Reason}}}, nil
	}
	return Decoded{WriteKey: segment.WriteKey(body), Events: []*ingestionv1.Event{ev}, Index: []int{0}}, nil
}

// DecodeBatch decodes a /v1/batch (or /v1/import) body. Only an unusable
// envelope is ErrUnparseable; bad items become Problems.
func DecodeBatch(body []byte) (Decoded, error) {
	b, err := segment.DecodeBatch(body)
	if err != nil {
		return Decoded{}, fmt.Errorf("%w: %w", ErrUnparseable, err)
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
