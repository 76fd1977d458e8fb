package account

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// codecVersion is the first byte of every encoding; bump it when the layout
// changes and keep decoding the old one.
const codecVersion = 1

// ErrCorrupt is returned (wrapped) by Unmarshal for bytes it cannot decode.
var ErrCorrupt = errors.New("corrupt aggregates encoding")

// Marshal encodes the aggregates compactly: varints, and event names and
// user ids written once in a table that daily buckets refer to by index.
// Equal aggregates encode to equal bytes.
func (a *Aggregates) Marshal() []byte {
	w := writer{buf: make([]byte, 0, 256)}
	w.buf = append(w.buf, codecVersion)
	w.str(a.Workspace)
	w.str(a.AccountID)
	for _, v := range []int64{a.Seats, a.CreatedAt, a.ContractStart, a.ContractEnd, int64(a.NPS), a.NPSAt, a.FirstEventAt, a.LastEventAt} {
		w.varint(v)
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(a.ARR))

	keys := sortedKeys(a.Traits)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(a.Traits[k])
	}

	// Name table: every event name, then count keys missing from it.
	names := sortedKeys(a.Events)
	nameIdx := make(map[string]int, len(names))
	for i, n := range names {
		nameIdx[n] = i
	}
	var extra []string
	for _, d := range a.Days {
		for n := range d.Counts {
			if _, ok := nameIdx[n]; !ok {
				nameIdx[n] = len(names) + len(extra)
				extra = append(extra, n)
			}
		}
	}
	sort.Strings(extra)
	for i, n := range extra {
		nameIdx[n] = len(names) + i
	}
	w.uvarint(uint64(len(names) + len(extra)))
	for _, n := range names {
		w.str(n)
		sp := a.Events[n]
		w.varint(sp.First)
		w.varint(sp.Last)
	}
	for _, n := range extra {
		w.str(n)
		w.varint(0)
		w.varint(0)
	}

	// User table: every user, then day users missing from it.
	uids := make([]string, 0, len(a.Users))
	for id := range a.Users {
		uids = append(uids, id)
	}
	sort.Strings(uids)
	userIdx := make(map[string]int, len(uids))
	for i, id := range uids {
		userIdx[id] = i
	}
	var extraUsers []string
	for _, d := range a.Days {
		for _, id := range d.Users {
			if _, ok := userIdx[id]; !ok {
				userIdx[id] = -1
				extraUsers = append(extraUsers, id)
			}
		}
	}
	sort.Strings(extraUsers)
	for i, id := range extraUsers {
		userIdx[id] = len(uids) + i
	}
	w.uvarint(uint64(len(uids)))
	for _, id := range uids {
		u := a.Users[id]
		w.str(id)
		w.str(u.EmailDomain)
		w.str(u.Department)
		w.str(u.Title)
		w.str(u.Role)
		w.str(u.Persona)
		w.varint(u.FirstSeen)
		w.varint(u.LastSeen)
	}
	w.uvarint(uint64(len(extraUsers)))
	for _, id := range extraUsers {
		w.str(id)
	}

	w.uvarint(uint64(len(a.Days)))
	var prev int32
	for _, d := range a.Days {
		w.varint(int64(d.Day - prev))
		prev = d.Day
		w.uvarint(uint64(d.Total))
		ck := sortedKeys(d.Counts)
		w.uvarint(uint64(len(ck)))
		for _, n := range ck {
			w.uvarint(uint64(nameIdx[n]))
			w.uvarint(uint64(d.Counts[n]))
		}
		w.uvarint(uint64(len(d.Users)))
		for _, id := range d.Users {
			w.uvarint(uint64(userIdx[id]))
		}
	}

	ik := sortedKeys(a.Integrations)
	w.uvarint(uint64(len(ik)))
	for _, k := range ik {
		w.str(k)
		w.varint(a.Integrations[k])
	}
	tk := sortedKeys(a.Tickets)
	w.uvarint(uint64(len(tk)))
	for _, k := range tk {
		t := a.Tickets[k]
		w.str(k)
		w.str(t.Priority)
		w.varint(t.OpenedAt)
	}
	return w.buf
}

// Unmarshal decodes what Marshal wrote. It never panics on arbitrary input.
func Unmarshal(b []byte) (*Aggregates, error) {
	r := reader{buf: b}
	if v := r.byte(); v != codecVersion {
		return nil, fmt.Errorf("decode aggregates: version %d: %w", v, ErrCorrupt)
	}
	a := New(r.str(), r.str())
	ints := []*int64{&a.Seats, &a.CreatedAt, &a.ContractStart, &a.ContractEnd, nil, &a.NPSAt, &a.FirstEventAt, &a.LastEventAt}
	for i, p := range ints {
		v := r.varint()
		if p == nil {
			if i == 4 {
				a.NPS = int32(v)
			}
			continue
		}
		*p = v
	}
	a.ARR = math.Float64frombits(r.u64())

	for n := r.count(2); n > 0 && r.err == nil; n-- {
		k := r.str()
		a.Traits[k] = r.str()
	}
	names := make([]string, r.count(3))
	for i := range names {
		names[i] = r.str()
		first, last := r.varint(), r.varint()
		if first != 0 || last != 0 {
			a.Events[names[i]] = Span{First: first, Last: last}
		}
	}
	nu := r.count(8)
	uids := make([]string, 0, nu)
	for ; nu > 0 && r.err == nil; nu-- {
		u := &User{ID: r.str(), EmailDomain: r.str(), Department: r.str(), Title: r.str(), Role: r.str(), Persona: r.str()}
		u.FirstSeen, u.LastSeen = r.varint(), r.varint()
		a.Users[u.ID] = u
		uids = append(uids, u.ID)
	}
	for n := r.count(1); n > 0 && r.err == nil; n-- {
		uids = append(uids, r.str())
	}
	nd := r.count(4)
	if nd > 0 {
		a.Days = make([]Day, 0, nd)
	}
	var prev int64
	for ; nd > 0 && r.err == nil; nd-- {
		prev += r.varint()
		if prev < math.MinInt32 || prev > math.MaxInt32 {
			r.fail("day out of range")
			break
		}
		d := Day{Day: int32(prev), Total: int32(r.uvarint())}
		nc := r.count(2)
		d.Counts = make(map[string]int32, nc)
		for ; nc > 0 && r.err == nil; nc-- {
			i := r.uvarint()
			c := r.uvarint()
			if i >= uint64(len(names)) {
				r.fail("name index out of range")
				break
			}
			d.Counts[names[i]] = int32(c)
		}
		for n := r.count(1); n > 0 && r.err == nil; n-- {
			i := r.uvarint()
			if i >= uint64(len(uids)) {
				r.fail("user index out of range")
				break
			}
			d.Users = append(d.Users, uids[i])
		}
		a.Days = append(a.Days, d)
	}
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		k := r.str()
		a.Integrations[k] = r.varint()
	}
	for n := r.count(3); n > 0 && r.err == nil; n-- {
		k := r.str()
		a.Tickets[k] = Ticket{Priority: r.str(), OpenedAt: r.varint()}
	}
	if r.err == nil && len(r.buf) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode aggregates: %w", r.err)
	}
	for i := 1; i < len(a.Days); i++ {
		if a.Days[i].Day <= a.Days[i-1].Day {
			return nil, fmt.Errorf("decode aggregates: days out of order: %w", ErrCorrupt)
		}
	}
	return a, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type writer struct{ buf []byte }

func (w *writer) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *writer) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }
func (w *writer) str(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", msg, ErrCorrupt)
	}
	r.buf = nil
}

func (r *reader) byte() byte {
	if len(r.buf) < 1 {
		r.fail("truncated")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) u64() uint64 {
	if len(r.buf) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.buf)
	r.buf = r.buf[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length and rejects one that the remaining bytes cannot hold
// at minBytes per element, so garbage cannot force a huge allocation.
func (r *reader) count(minBytes int) int {
	n := r.uvarint()
	if n > uint64(len(r.buf)/minBytes) {
		r.fail("length exceeds input")
		return 0
	}
	return int(n)
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail("string exceeds input")
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}
