package store

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cairn-dev/cairn/services/routing/internal/sla"
)

// The encoder of the routing log records the timer loop publishes: a
// restart after downtime publishes millions of SLA events, and building
// and marshalling the messages was most of its cost. The bytes are exactly
// proto.Marshal's (fields in number order, empty ones omitted);
// record_test.go checks them against it on random events.

// Field numbers of the messages the encoder writes, as it knows them. A
// field added to one of the messages fails TestRecordCodecFields until the
// encoder writes it (or is shown not to need to) and it is listed here.
var (
	// logRecordFields: offset and partition (1, 2) are filled in by the
	// reader, assignment (3) and sla_event (4) are written here, tombstone
	// (5) is only ever written by proto.Marshal.
	logRecordFields       = []protowire.Number{1, 2, 3, 4, 5}
	slaEventFields        = []protowire.Number{1, 2, 3, 4, 5, 6, 7, 8}
	passedThresholdFields = []protowire.Number{1, 2}
	timestampFields       = []protowire.Number{1, 2}
)

// AssignmentRecord returns the LogRecord whose assignment field is enc, an
// encoded Assignment (as UpdateAssignment returns it): one marshal serves
// the store and the log.
func AssignmentRecord(enc []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(make([]byte, 0, len(enc)+6), 3, protowire.BytesType), enc)
}

// SLAEventRecord encodes a LogRecord holding one SlaEvent exactly as
// proto.Marshal does, without building the messages. passed are the
// thresholds the event overtook; assignment is the event's assignment
// field, encoded, or nil.
func SLAEventRecord(ws, assignmentID, kind, owner, newOwner string, at time.Time, passed []sla.Timer, assignment []byte) []byte {
	ev := make([]byte, 0, 64+len(ws)+len(assignmentID)+len(owner)+len(newOwner)+32*len(passed)+len(assignment)+4)
	for i, v := range [...]string{ws, assignmentID, kind, owner, newOwner} {
		if v != "" {
			ev = protowire.AppendString(protowire.AppendTag(ev, protowire.Number(i+1), protowire.BytesType), v)
		}
	}
	ev = appendTimestamp(ev, 6, at)
	for _, p := range passed {
		var th [48]byte
		b := th[:0]
		if p.Kind != "" {
			b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), string(p.Kind))
		}
		b = appendTimestamp(b, 2, p.At)
		ev = protowire.AppendBytes(protowire.AppendTag(ev, 7, protowire.BytesType), b)
	}
	if assignment != nil {
		ev = protowire.AppendBytes(protowire.AppendTag(ev, 8, protowire.BytesType), assignment)
	}
	rec := make([]byte, 0, len(ev)+4)
	return protowire.AppendBytes(protowire.AppendTag(rec, 4, protowire.BytesType), ev)
}

// appendTimestamp appends at as a google.protobuf.Timestamp in field num.
func appendTimestamp(b []byte, num protowire.Number, at time.Time) []byte {
	var ts [24]byte
	t := ts[:0]
	if sec := at.Unix(); sec != 0 {
		t = protowire.AppendVarint(protowire.AppendTag(t, 1, protowire.VarintType), uint64(sec))
	}
	if ns := at.Nanosecond(); ns != 0 {
		t = protowire.AppendVarint(protowire.AppendTag(t, 2, protowire.VarintType), uint64(int64(ns)))
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), t)
}
