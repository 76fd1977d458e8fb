package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// snapshotVersion prefixes encoded snapshots so the format can change.
const snapshotVersion = 2

var errShort = errors.New("truncated snapshot")

// snapshotFields and metaFields name the fields of Snapshot and Meta that
// EncodeSnapshot/DecodeSnapshot and EncodeMeta/DecodeMeta write and read.
// A field added to either type must be added to its codec (with a new
// version byte) and here; TestCodecKnowsEveryField fails until it is.
var (
	snapshotFields = []string{"Day", "Score", "Band", "Points", "Raw", "When"}
	metaFields     = []string{"Stage", "EnteredAt", "DropFrom", "LastEval"}
)

// EncodeSnapshot renders s in a compact binary form (snapshots are the
// bulkiest records: one per account per day). Map entries are sorted so
// equal snapshots encode equally.
func EncodeSnapshot(s *Snapshot) []byte {
	buf := make([]byte, 0, 64+24*(len(s.Points)+len(s.Raw)))
	buf = append(buf, snapshotVersion)
	buf = appendString(buf, s.Day)
	buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(s.Score))
	buf = binary.AppendUvarint(buf, uint64(s.Band))
	buf = appendString(buf, s.When)
	buf = appendMap(buf, s.Points)
	keys := make([]uint64, 0, len(s.Raw))
	for k := range s.Raw {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		buf = binary.BigEndian.AppendUint64(buf, k)
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(s.Raw[k]))
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendMap(buf []byte, m map[string]float64) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		buf = appendString(buf, k)
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(m[k]))
	}
	return buf
}

// DecodeSnapshot parses EncodeSnapshot's output.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	if len(b) == 0 || b[0] != snapshotVersion {
		return nil, errors.New("unknown snapshot encoding")
	}
	d := decoder{b: b[1:]}
	s := &Snapshot{Day: d.str()}
	s.Score = math.Float64frombits(d.u64())
	s.Band = healthv1.Band(d.uvarint())
	s.When = d.str()
	s.Points = d.floats()
	s.Raw = d.keyed()
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// DecodeSnapshotScore returns the score of an encoded snapshot.
func DecodeSnapshotScore(b []byte) (float64, error) {
	if len(b) == 0 || b[0] != snapshotVersion {
		return 0, errors.New("unknown snapshot encoding")
	}
	d := decoder{b: b[1:]}
	d.skipStr()
	score := math.Float64frombits(d.u64())
	return score, d.err
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) time() time.Time {
	if len(d.b) < 1 {
		d.err = errShort
		return time.Time{}
	}
	set := d.b[0]
	d.b = d.b[1:]
	if set == 0 {
		return time.Time{}
	}
	sec := int64(0)
	if d.err == nil {
		v, n := binary.Varint(d.b)
		if n <= 0 {
			d.err = errShort
			return time.Time{}
		}
		sec, d.b = v, d.b[n:]
	}
	nsec := d.uvarint()
	if d.err != nil || nsec >= 1e9 {
		d.err = errShort
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) skipStr() {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errShort
		return
	}
	d.b = d.b[n:]
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) keyed() map[uint64]float64 {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b))/16 {
		d.err = errShort
		return nil
	}
	m := make(map[uint64]float64, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.u64()
		m[k] = math.Float64frombits(d.u64())
	}
	return m
}

func (d *decoder) floats() map[string]float64 {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	m := make(map[string]float64, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = math.Float64frombits(d.u64())
	}
	return m
}

// Encoded is an evaluation's output in stored form, prepared outside the
// transaction (in parallel during a rescore) and written by PutEncoded.
type Encoded struct {
	// Workspace and Account name the account.
	Workspace, Account string
	// Day keys the snapshot.
	Day string
	// Snapshot, Health and Row are the encoded records; Snapshot and Row are
	// nil for an account that is not scored (no snapshot; out of the lists).
	Snapshot, Health, Row []byte
	// Signals are the changed signals with their encoded form.
	Signals []EncodedSignal
}

// EncodedSignal is one changed signal.
type EncodedSignal struct {
	// Signal is the decoded signal (its reason, state and account key the indexes).
	Signal *commonv1.Signal
	// Data is its deterministic proto encoding.
	Data []byte
}

// Marshal encodes m deterministically, as every record of this store is.
func Marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	return b, nil
}

// PutEncoded writes an evaluation's records.
func PutEncoded(tx *kv.Tx, e *Encoded) error { return NewWriter(tx, e.Workspace).PutEncoded(e) }

// Measured is one scored component as a snapshot records it.
type Measured struct {
	// Name and Points key Snapshot.Points.
	Name   string
	Points float64
	// Key and Raw key Snapshot.Raw when HasRaw (the measure evaluated).
	Key    uint64
	Raw    float64
	HasRaw bool
}

// EncodeSnapshotOf is EncodeSnapshot of the snapshot holding comps, without
// building its maps: the same bytes, for a fraction of the allocations (a
// rescore encodes one per account). Later entries win on duplicate names or
// keys, as map assignments in component order would.
func EncodeSnapshotOf(day string, score float64, band healthv1.Band, when string, comps []Measured) []byte {
	buf := make([]byte, 0, 64+40*len(comps))
	buf = append(buf, snapshotVersion)
	buf = appendString(buf, day)
	buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(score))
	buf = binary.AppendUvarint(buf, uint64(band))
	buf = appendString(buf, when)

	var small [16]int
	idx := small[:0]
	for i := range comps {
		idx = append(idx, i)
	}
	byName := lastOfEach(idx, func(c int) string { return comps[c].Name })
	buf = binary.AppendUvarint(buf, uint64(len(byName)))
	for _, c := range byName {
		buf = appendString(buf, comps[c].Name)
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(comps[c].Points))
	}

	idx = idx[:0]
	for i := range comps {
		if comps[i].HasRaw {
			idx = append(idx, i)
		}
	}
	byKey := lastOfEach(idx, func(c int) uint64 { return comps[c].Key })
	buf = binary.AppendUvarint(buf, uint64(len(byKey)))
	for _, c := range byKey {
		buf = binary.BigEndian.AppendUint64(buf, comps[c].Key)
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(comps[c].Raw))
	}
	return buf
}

// lastOfEach sorts idx by key in place and keeps the last of each run of
// equal keys, the one map assignments in idx's order would keep. An
// insertion sort: a snapshot has a handful of components, and it is stable,
// so among equal keys the last stays last.
func lastOfEach[K cmp.Ordered](idx []int, key func(int) K) []int {
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && key(idx[j]) < key(idx[j-1]); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	n := 0
	for i, c := range idx {
		if i+1 < len(idx) && key(idx[i+1]) == key(c) {
			continue
		}
		idx[n] = c
		n++
	}
	return idx[:n]
}

// logRecordSignal is the field number of LogRecord.signal.
var logRecordSignal = (&healthv1.LogRecord{}).ProtoReflect().Descriptor().Fields().ByName("signal").Number()

// SignalRecord returns the encoded health log record of a signal whose
// Marshal encoding is data: the bytes of Marshal(&LogRecord{Signal}),
// without encoding the signal a second time.
func SignalRecord(data []byte) []byte {
	b := make([]byte, 0, len(data)+4)
	b = protowire.AppendTag(b, logRecordSignal, protowire.BytesType)
	return protowire.AppendBytes(b, data)
}

// metaVersion prefixes encoded meta records.
const metaVersion = 1

// EncodeMeta renders m compactly: it is rewritten on every evaluation.
func EncodeMeta(m *Meta) []byte {
	b := make([]byte, 0, 48+len(m.Stage))
	b = append(b, metaVersion)
	b = appendString(b, m.Stage)
	b = appendTime(b, m.EnteredAt)
	b = binary.AppendUvarint(b, uint64(m.DropFrom))
	return appendTime(b, m.LastEval)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// DecodeMeta decodes an account's meta record (empty input = zero meta).
func DecodeMeta(meta []byte) (*Meta, error) {
	m := &Meta{}
	if len(meta) == 0 {
		return m, nil
	}
	if meta[0] != metaVersion {
		return nil, errors.New("decode account meta: unknown encoding")
	}
	d := decoder{b: meta[1:]}
	m.Stage = d.str()
	m.EnteredAt = d.time()
	m.DropFrom = healthv1.Band(d.uvarint())
	m.LastEval = d.time()
	if d.err != nil {
		return nil, fmt.Errorf("decode account meta: %w", d.err)
	}
	return m, nil
}
