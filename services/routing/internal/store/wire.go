package store

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// The codec of stored assignments: the timer loop reads the few fields of
// an encoded Assignment it needs (LightAssignment) and writes back a new
// state and SLA clock with every other field's bytes kept as they are
// (SpliceAssignment), instead of decoding and re-encoding the lead and the
// decision of each of millions of fired timers. wire_test.go checks it
// against proto.Marshal and proto.Unmarshal on random assignments.

// Field numbers of routingv1.Assignment that the timer loop reads or
// rewrites without decoding the whole message (lead, decision with its
// candidates, ...).
const (
	assignmentIDField protowire.Number = 2
	typeField         protowire.Number = 3
	accountIDField    protowire.Number = 4
	ownerIDField      protowire.Number = 6
	stateField        protowire.Number = 7
	slaField          protowire.Number = 9
	previousOwnersFld protowire.Number = 12
	reassignmentsFld  protowire.Number = 18
)

// assignmentFields are the field numbers of routingv1.Assignment this codec
// was written against: it reads the ones above and copies the others as
// encoded. A field added to the message fails TestAssignmentCodecFields
// until it is checked here (a repeated field between state and sla, or a
// second repeated one, needs scanAssignment's order checks revisited) and
// added to the list.
var assignmentFields = []protowire.Number{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}

// wireAssignment is what the timer loop needs of a stored Assignment.
type wireAssignment struct {
	id, account, owner string
	typ                routingv1.HandoffType
	state              routingv1.AssignmentState
	// sla is the SlaState's encoding; nil when the field is absent.
	sla []byte
}

// LightAssignment decodes the fields of an encoded Assignment the timer
// loop uses (ids, type, owner, state, SLA clock); false when the encoding is
// not one proto.Marshal would have written, and the caller must decode it
// in full.
func LightAssignment(raw []byte) (*routingv1.Assignment, bool) {
	w, ok := scanAssignment(raw)
	if !ok {
		return nil, false
	}
	a := &routingv1.Assignment{AssignmentId: w.id, Type: w.typ, AccountId: w.account, OwnerId: w.owner, State: w.state}
	if w.sla != nil {
		a.Sla = &routingv1.SlaState{}
		if err := proto.Unmarshal(w.sla, a.Sla); err != nil {
			return nil, false
		}
	}
	return a, true
}

// scanAssignment reads the fields the timer loop needs from an encoded
// Assignment. It reports false for anything proto.Marshal would not have
// written (fields out of order, a singular field twice, an unexpected wire
// type, truncation); the caller then decodes the message in full.
func scanAssignment(b []byte) (wireAssignment, bool) {
	var w wireAssignment
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		// Only the repeated fields (both after sla, copied as encoded)
		// may follow themselves.
		if n < 0 || num < last || (num == last && num != previousOwnersFld && num != reassignmentsFld) {
			return w, false
		}
		last = num
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return w, false
		}
		val := b[:m]
		b = b[m:]
		switch num {
		case assignmentIDField, accountIDField, ownerIDField, slaField:
			if typ != protowire.BytesType {
				return w, false
			}
			v, k := protowire.ConsumeBytes(val)
			if k < 0 {
				return w, false
			}
			switch num {
			case assignmentIDField:
				w.id = string(v)
			case accountIDField:
				w.account = string(v)
			case ownerIDField:
				w.owner = string(v)
			case slaField:
				// Non-nil even when empty: the field is present.
				w.sla = append(make([]byte, 0, len(v)), v...)
			}
		case typeField, stateField:
			if typ != protowire.VarintType {
				return w, false
			}
			v, k := protowire.ConsumeVarint(val)
			if k < 0 {
				return w, false
			}
			if num == typeField {
				w.typ = routingv1.HandoffType(int32(v))
			} else {
				w.state = routingv1.AssignmentState(int32(v))
			}
		}
	}
	return w, true
}

// SpliceAssignment returns old (an encoding LightAssignment accepted) with
// its state and sla fields replaced, every other field's bytes kept as
// they are, in field order as proto.Marshal writes them; nil if old is not
// a valid encoding after all.
func SpliceAssignment(old []byte, state routingv1.AssignmentState, sla []byte) []byte {
	out := make([]byte, 0, len(old)+len(sla)+16)
	stateDone, slaDone := false, false
	emitState := func() {
		stateDone = true
		if state != 0 {
			out = protowire.AppendVarint(protowire.AppendTag(out, stateField, protowire.VarintType), uint64(int64(state)))
		}
	}
	emitSla := func() {
		slaDone = true
		out = protowire.AppendBytes(protowire.AppendTag(out, slaField, protowire.BytesType), sla)
	}
	b := old
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil
		}
		field := b[:n+m]
		b = b[n+m:]
		if !stateDone && num >= stateField {
			emitState()
		}
		if !slaDone && num >= slaField {
			emitSla()
		}
		if num == stateField || num == slaField {
			continue
		}
		out = append(out, field...)
	}
	if !stateDone {
		emitState()
	}
	if !slaDone {
		emitSla()
	}
	return out
}
