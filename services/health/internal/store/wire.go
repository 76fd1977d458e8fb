package store

import (
	"errors"
	"math"
	"sort"
	"unicode/utf8"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Hand-written protobuf encoders for the records an evaluation writes
// (health, list row, signals, score changes). They produce exactly the bytes
// of Marshal (deterministic proto encoding: fields in number order, map
// entries sorted by key, zero scalars left out, unknown fields last) for a
// fraction of its cost; a full rescore encodes several records per account.
// TestWireMatchesMarshal compares them with Marshal on random messages,
// TestWireRoundTrip decodes what they write, and TestWireKnowsEveryField
// fails when one of these messages gains a field they do not know
// (wireFields).

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// wireFields lists, for every message the encoders below write and
// UnmarshalHealth reads, the field numbers they handle. A field added to
// one of these messages must be added to the encoder, the decoder and this
// list; TestWireKnowsEveryField fails until it is.
var wireFields = map[protoreflect.FullName][]protowire.Number{
	"cairn.health.v1.AccountHealth":  {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21},
	"cairn.health.v1.ComponentScore": {1, 2, 3, 4, 5, 6, 7},
	"cairn.health.v1.Change":         {1, 2, 3, 4},
	"cairn.health.v1.AccountRow":     {1, 2, 3, 4, 5, 6, 7, 8, 9},
	"cairn.health.v1.ScoreChange":    {1, 2, 3, 4, 5, 6, 7},
	"cairn.common.v1.Signal":         {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
	// attributes: map<string, string>, key 1 and value 2 of each entry.
	"cairn.common.v1.Signal.AttributesEntry": {1, 2},
	"google.protobuf.Timestamp":              {1, 2},
	"cairn.common.v1.Lifecycle":              {1, 2, 3},
	"cairn.common.v1.StatusChange":           {1, 2, 3},
}

// MarshalHealth is Marshal(h).
func MarshalHealth(h *healthv1.AccountHealth) ([]byte, error) {
	var e wire
	e.b = make([]byte, 0, 192+96*len(h.GetComponents())+160*len(h.GetOpenSignals())+80*len(h.GetChanges()))
	e.health(h)
	return e.result()
}

// MarshalRow is Marshal(r).
func MarshalRow(r *healthv1.AccountRow) ([]byte, error) {
	var e wire
	e.b = make([]byte, 0, 96)
	e.row(r)
	return e.result()
}

// MarshalSignal is Marshal(s).
func MarshalSignal(s *commonv1.Signal) ([]byte, error) {
	var e wire
	e.b = make([]byte, 0, 192)
	e.signal(s)
	return e.result()
}

// logRecordScoreChange is the field number of LogRecord.score_change.
var logRecordScoreChange = (&healthv1.LogRecord{}).ProtoReflect().Descriptor().Fields().ByName("score_change").Number()

// MarshalScoreChangeRecord is Marshal(&LogRecord{ScoreChange: sc}).
func MarshalScoreChangeRecord(sc *healthv1.ScoreChange) ([]byte, error) {
	var e wire
	e.b = make([]byte, 0, 96)
	e.message(logRecordScoreChange, func() { e.scoreChange(sc) })
	return e.result()
}

type wire struct {
	b   []byte
	err error
}

func (e *wire) result() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

func (e *wire) str(num protowire.Number, s string) {
	if s == "" {
		return
	}
	if !utf8.ValidString(s) {
		e.err = errInvalidUTF8
	}
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, s)
}

// strAlways writes s even when empty (map entry keys and values).
func (e *wire) strAlways(num protowire.Number, s string) {
	if !utf8.ValidString(s) {
		e.err = errInvalidUTF8
	}
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, s)
}

func (e *wire) double(num protowire.Number, v float64) {
	if v == 0 && !math.Signbit(v) {
		return
	}
	e.b = protowire.AppendTag(e.b, num, protowire.Fixed64Type)
	e.b = protowire.AppendFixed64(e.b, math.Float64bits(v))
}

// varint writes an int32, int64, uint32 or enum value (negative values
// sign-extended, as protobuf does).
func (e *wire) varint(num protowire.Number, v int64) {
	if v == 0 {
		return
	}
	e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
	e.b = protowire.AppendVarint(e.b, uint64(v))
}

// message writes field num holding what body appends. The length is
// reserved as one byte and the body moved when it turns out longer.
func (e *wire) message(num protowire.Number, body func()) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	at := len(e.b)
	e.b = append(e.b, 0)
	body()
	n := len(e.b) - at - 1
	if n < 0x80 {
		e.b[at] = byte(n)
		return
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	for i := 0; i < extra; i++ {
		e.b = append(e.b, 0)
	}
	copy(e.b[at+1+extra:], e.b[at+1:at+1+n])
	protowire.AppendVarint(e.b[at:at], uint64(n))
}

func (e *wire) unknown(m proto.Message) {
	e.b = append(e.b, m.ProtoReflect().GetUnknown()...)
}

func (e *wire) timestamp(num protowire.Number, t *timestamppb.Timestamp) {
	if t == nil {
		return
	}
	e.message(num, func() {
		e.varint(1, t.GetSeconds())
		e.varint(2, int64(t.GetNanos()))
		e.unknown(t)
	})
}

func (e *wire) health(h *healthv1.AccountHealth) {
	e.str(1, h.GetWorkspace())
	e.str(2, h.GetAccountId())
	e.double(3, h.GetScore())
	e.varint(4, int64(h.GetBand()))
	for _, c := range h.GetComponents() {
		e.message(5, func() {
			e.str(1, c.GetName())
			e.double(2, c.GetRawValue())
			e.double(3, c.GetPoints())
			e.double(4, c.GetWeight())
			e.double(5, c.GetContribution())
			e.str(6, c.GetExplanation())
			e.str(7, c.GetError())
			e.unknown(c)
		})
	}
	e.double(6, h.GetPreviousScore())
	for _, c := range h.GetChanges() {
		e.message(7, func() {
			e.str(1, c.GetComponent())
			e.double(2, c.GetPreviousContribution())
			e.double(3, c.GetContribution())
			e.str(4, c.GetReason())
			e.unknown(c)
		})
	}
	e.double(8, h.GetTrend_7D())
	e.double(9, h.GetTrend_30D())
	e.str(10, h.GetDirection())
	e.str(11, h.GetModelId())
	e.varint(12, int64(h.GetModelVersion()))
	e.str(13, h.GetProfile())
	e.timestamp(14, h.GetComputedAt())
	for _, s := range h.GetOpenSignals() {
		e.message(15, func() { e.signal(s) })
	}
	e.str(16, h.GetStage())
	e.double(17, h.GetArr())
	e.timestamp(18, h.GetContractEnd())
	if h.GetScored() {
		e.varint(19, 1)
	}
	if l := h.GetLifecycle(); l != nil {
		e.message(20, func() { e.lifecycle(l) })
	}
	e.timestamp(21, h.GetAsOf())
	e.unknown(h)
}

func (e *wire) lifecycle(l *commonv1.Lifecycle) {
	e.varint(1, int64(l.GetStatus()))
	e.timestamp(2, l.GetSince())
	for _, c := range l.GetHistory() {
		e.message(3, func() {
			e.varint(1, int64(c.GetStatus()))
			e.timestamp(2, c.GetAt())
			e.str(3, c.GetEvent())
			e.unknown(c)
		})
	}
	e.unknown(l)
}

func (e *wire) signal(s *commonv1.Signal) {
	e.str(1, s.GetWorkspace())
	e.str(2, s.GetAccountId())
	e.str(3, s.GetSignalId())
	e.varint(4, int64(s.GetKind()))
	e.str(5, s.GetReason())
	e.str(6, s.GetMessage())
	e.varint(7, int64(s.GetState()))
	e.timestamp(8, s.GetOpenedAt())
	e.timestamp(9, s.GetClosedAt())
	if attrs := s.GetAttributes(); len(attrs) > 0 {
		var small [8]string
		keys := small[:0]
		for k := range attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e.message(10, func() {
				e.strAlways(1, k)
				e.strAlways(2, attrs[k])
			})
		}
	}
	e.unknown(s)
}

func (e *wire) row(r *healthv1.AccountRow) {
	e.str(1, r.GetAccountId())
	e.double(2, r.GetScore())
	e.varint(3, int64(r.GetBand()))
	e.double(4, r.GetScoreChange_30D())
	e.double(5, r.GetArr())
	e.timestamp(6, r.GetContractEnd())
	e.varint(7, int64(r.GetOpenSignals()))
	e.str(8, r.GetStage())
	e.str(9, r.GetRenewalPlay())
	e.unknown(r)
}

func (e *wire) scoreChange(sc *healthv1.ScoreChange) {
	e.str(1, sc.GetWorkspace())
	e.str(2, sc.GetAccountId())
	e.double(3, sc.GetPreviousScore())
	e.double(4, sc.GetScore())
	e.varint(5, int64(sc.GetPreviousBand()))
	e.varint(6, int64(sc.GetBand()))
	e.timestamp(7, sc.GetAt())
	e.unknown(sc)
}

// UnmarshalHealth decodes an encoded AccountHealth, as proto.Unmarshal
// does. Records written by MarshalHealth take a fast path (one allocation
// for all strings, one for all component scores); anything else (unknown
// fields, another field order, invalid text) falls back to proto.Unmarshal.
func UnmarshalHealth(b []byte) (*healthv1.AccountHealth, error) {
	h := &healthv1.AccountHealth{}
	d := wireDec{b: b, s: string(b)}
	if d.health(h) && len(d.b) == 0 {
		return h, nil
	}
	h = &healthv1.AccountHealth{}
	if err := proto.Unmarshal(b, h); err != nil {
		return nil, err
	}
	return h, nil
}

// wireDec decodes the canonical encoding; every method returns false on
// anything it does not expect, and the caller falls back to proto.
type wireDec struct {
	b []byte
	// s is the whole input as a string; strings are cut from it.
	s string
}

// field reads the next tag of a message ending at end (the length of the
// input left where it ends) and checks it comes after the previous field
// prev in number order, or repeats it when prevRepeated.
func (d *wireDec) field(end int, prev protowire.Number, prevRepeated bool) (protowire.Number, protowire.Type, bool) {
	if len(d.b) <= end {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(d.b)
	if n < 0 || num < prev || (num == prev && !prevRepeated) {
		return 0, 0, false
	}
	d.b = d.b[n:]
	return num, typ, true
}

func (d *wireDec) varint(typ protowire.Type) (uint64, bool) {
	if typ != protowire.VarintType {
		return 0, false
	}
	v, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		return 0, false
	}
	d.b = d.b[n:]
	return v, true
}

func (d *wireDec) double(typ protowire.Type) (float64, bool) {
	if typ != protowire.Fixed64Type {
		return 0, false
	}
	v, n := protowire.ConsumeFixed64(d.b)
	if n < 0 {
		return 0, false
	}
	d.b = d.b[n:]
	return math.Float64frombits(v), true
}

func (d *wireDec) str(typ protowire.Type) (string, bool) {
	if typ != protowire.BytesType {
		return "", false
	}
	v, n := protowire.ConsumeBytes(d.b)
	if n < 0 || !utf8.Valid(v) {
		return "", false
	}
	at := len(d.s) - len(d.b) + n - len(v)
	d.b = d.b[n:]
	return d.s[at : at+len(v)], true
}

// message enters a nested message, calls body with the offset where it
// ends, and checks body consumed exactly the message.
func (d *wireDec) message(typ protowire.Type, body func(end int) bool) bool {
	if typ != protowire.BytesType {
		return false
	}
	size, n := protowire.ConsumeVarint(d.b)
	if n < 0 || size > uint64(len(d.b)-n) {
		return false
	}
	d.b = d.b[n:]
	end := len(d.b) - int(size)
	return body(end) && len(d.b) == end
}

// fields decodes the fields before end, which must come in ascending
// field-number order (a number may repeat where repeated says so; nil:
// none may). each decodes one field's value and reports whether it was
// valid; unknown numbers are invalid.
func (d *wireDec) fields(end int, repeated func(protowire.Number) bool, each func(num protowire.Number, typ protowire.Type) bool) bool {
	prev := protowire.Number(0)
	for len(d.b) > end {
		num, typ, ok := d.field(end, prev, repeated != nil && repeated(prev))
		if !ok || !each(num, typ) {
			return false
		}
		prev = num
	}
	return true
}

// lifecycle decodes an embedded Lifecycle (field 3, history, repeats).
func (d *wireDec) lifecycle(typ protowire.Type) (*commonv1.Lifecycle, bool) {
	l := &commonv1.Lifecycle{}
	ok := d.message(typ, func(end int) bool {
		return d.fields(end, func(num protowire.Number) bool { return num == 3 }, func(num protowire.Number, typ protowire.Type) bool {
			switch num {
			case 1:
				v, ok := d.varint(typ)
				l.Status = commonv1.AccountStatus(int32(v))
				return ok
			case 2:
				var ok bool
				l.Since, ok = d.timestamp(typ)
				return ok
			case 3:
				c := &commonv1.StatusChange{}
				l.History = append(l.History, c)
				return d.message(typ, func(end int) bool {
					return d.fields(end, nil, func(num protowire.Number, typ protowire.Type) bool {
						var ok bool
						switch num {
						case 1:
							var v uint64
							v, ok = d.varint(typ)
							c.Status = commonv1.AccountStatus(int32(v))
						case 2:
							c.At, ok = d.timestamp(typ)
						case 3:
							c.Event, ok = d.str(typ)
						}
						return ok
					})
				})
			}
			return false
		})
	})
	return l, ok
}

func (d *wireDec) timestamp(typ protowire.Type) (*timestamppb.Timestamp, bool) {
	t := &timestamppb.Timestamp{}
	ok := d.message(typ, func(end int) bool {
		return d.fields(end, nil, func(num protowire.Number, typ protowire.Type) bool {
			v, ok := d.varint(typ)
			switch {
			case !ok:
				return false
			case num == 1:
				t.Seconds = int64(v)
			case num == 2:
				t.Nanos = int32(v)
			default:
				return false
			}
			return true
		})
	})
	return t, ok
}

func (d *wireDec) health(h *healthv1.AccountHealth) bool {
	// Count the repeated fields first so that each array is allocated once.
	var nc, nch, ns int
	for rest := d.b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return false
		}
		rest = rest[n:]
		switch num {
		case 5:
			nc++
		case 7:
			nch++
		case 15:
			ns++
		}
		if n = protowire.ConsumeFieldValue(num, typ, rest); n < 0 {
			return false
		}
		rest = rest[n:]
	}
	comps := make([]healthv1.ComponentScore, 0, nc)
	changes := make([]healthv1.Change, 0, nch)
	sigs := make([]commonv1.Signal, 0, ns)
	if !d.fields(0, num5or7or15, func(num protowire.Number, typ protowire.Type) bool {
		var ok bool
		var v uint64
		switch num {
		case 1:
			h.Workspace, ok = d.str(typ)
		case 2:
			h.AccountId, ok = d.str(typ)
		case 3:
			h.Score, ok = d.double(typ)
		case 4:
			v, ok = d.varint(typ)
			h.Band = healthv1.Band(int32(v))
		case 5:
			comps = append(comps, healthv1.ComponentScore{})
			ok = d.component(typ, &comps[len(comps)-1])
		case 6:
			h.PreviousScore, ok = d.double(typ)
		case 7:
			changes = append(changes, healthv1.Change{})
			ok = d.change(typ, &changes[len(changes)-1])
		case 8:
			h.Trend_7D, ok = d.double(typ)
		case 9:
			h.Trend_30D, ok = d.double(typ)
		case 10:
			h.Direction, ok = d.str(typ)
		case 11:
			h.ModelId, ok = d.str(typ)
		case 12:
			v, ok = d.varint(typ)
			h.ModelVersion = uint32(v)
		case 13:
			h.Profile, ok = d.str(typ)
		case 14:
			h.ComputedAt, ok = d.timestamp(typ)
		case 15:
			sigs = append(sigs, commonv1.Signal{})
			ok = d.message(typ, func(end int) bool { return d.signal(end, &sigs[len(sigs)-1]) })
		case 16:
			h.Stage, ok = d.str(typ)
		case 17:
			h.Arr, ok = d.double(typ)
		case 18:
			h.ContractEnd, ok = d.timestamp(typ)
		case 19:
			v, ok = d.varint(typ)
			h.Scored = v != 0
		case 20:
			h.Lifecycle, ok = d.lifecycle(typ)
		case 21:
			h.AsOf, ok = d.timestamp(typ)
		default:
			return false
		}
		return ok
	}) {
		return false
	}
	if len(comps) > 0 {
		h.Components = make([]*healthv1.ComponentScore, len(comps))
		for i := range comps {
			h.Components[i] = &comps[i]
		}
	}
	if len(changes) > 0 {
		h.Changes = make([]*healthv1.Change, len(changes))
		for i := range changes {
			h.Changes[i] = &changes[i]
		}
	}
	if len(sigs) > 0 {
		h.OpenSignals = make([]*commonv1.Signal, len(sigs))
		for i := range sigs {
			h.OpenSignals[i] = &sigs[i]
		}
	}
	return true
}

// num5or7or15 reports whether num is a repeated field of AccountHealth.
func num5or7or15(num protowire.Number) bool { return num == 5 || num == 7 || num == 15 }

// isAttributes reports whether num is Signal's repeated field (attributes).
func isAttributes(num protowire.Number) bool { return num == 10 }

func (d *wireDec) component(typ protowire.Type, c *healthv1.ComponentScore) bool {
	return d.message(typ, func(end int) bool {
		return d.fields(end, nil, func(num protowire.Number, typ protowire.Type) bool {
			var ok bool
			switch num {
			case 1:
				c.Name, ok = d.str(typ)
			case 2:
				c.RawValue, ok = d.double(typ)
			case 3:
				c.Points, ok = d.double(typ)
			case 4:
				c.Weight, ok = d.double(typ)
			case 5:
				c.Contribution, ok = d.double(typ)
			case 6:
				c.Explanation, ok = d.str(typ)
			case 7:
				c.Error, ok = d.str(typ)
			default:
				return false
			}
			return ok
		})
	})
}

func (d *wireDec) change(typ protowire.Type, c *healthv1.Change) bool {
	return d.message(typ, func(end int) bool {
		return d.fields(end, nil, func(num protowire.Number, typ protowire.Type) bool {
			var ok bool
			switch num {
			case 1:
				c.Component, ok = d.str(typ)
			case 2:
				c.PreviousContribution, ok = d.double(typ)
			case 3:
				c.Contribution, ok = d.double(typ)
			case 4:
				c.Reason, ok = d.str(typ)
			default:
				return false
			}
			return ok
		})
	})
}

func (d *wireDec) signal(end int, s *commonv1.Signal) bool {
	return d.fields(end, isAttributes, func(num protowire.Number, typ protowire.Type) bool {
		var ok bool
		var v uint64
		switch num {
		case 1:
			s.Workspace, ok = d.str(typ)
		case 2:
			s.AccountId, ok = d.str(typ)
		case 3:
			s.SignalId, ok = d.str(typ)
		case 4:
			v, ok = d.varint(typ)
			s.Kind = commonv1.SignalKind(int32(v))
		case 5:
			s.Reason, ok = d.str(typ)
		case 6:
			s.Message, ok = d.str(typ)
		case 7:
			v, ok = d.varint(typ)
			s.State = commonv1.SignalState(int32(v))
		case 8:
			s.OpenedAt, ok = d.timestamp(typ)
		case 9:
			s.ClosedAt, ok = d.timestamp(typ)
		case 10:
			if s.Attributes == nil {
				s.Attributes = make(map[string]string, 4)
			}
			ok = d.message(typ, func(end int) bool {
				var k, val string
				if !d.fields(end, nil, func(num protowire.Number, typ protowire.Type) bool {
					var ok bool
					switch num {
					case 1:
						k, ok = d.str(typ)
					case 2:
						val, ok = d.str(typ)
					default:
						return false
					}
					return ok
				}) {
					return false
				}
				if _, dup := s.Attributes[k]; dup {
					return false
				}
				s.Attributes[k] = val
				return true
			})
		default:
			return false
		}
		return ok
	})
}
