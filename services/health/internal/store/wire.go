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
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Hand-written protobuf encoders for the records an evaluation writes
// (health, list row, signals, score changes). They produce exactly the bytes
// of Marshal (deterministic proto encoding: fields in number order, map
// entries sorted by key, zero scalars left out, unknown fields last) for a
// fraction of its cost; a full rescore encodes several records per account.
// TestWireMatchesMarshal compares them with Marshal on random messages, and
// fails when one of these messages gains a field the encoders do not know.

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

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
	e.unknown(h)
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
