package aggregate

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"time"
)

// codecVersion prefixes encoded aggregates so the format can change.
const codecVersion = 1

// errCorrupt reports an encoded aggregate that cannot be decoded.
var errCorrupt = errors.New("corrupt aggregate encoding")

// MarshalBinary encodes the aggregate compactly and deterministically (map
// keys sorted). It is several times faster than JSON, which matters because
// every evaluation decodes and every event re-encodes an aggregate.
func (a *Aggregate) MarshalBinary() ([]byte, error) {
	e := enc{b: make([]byte, 0, 512)}
	e.b = append(e.b, codecVersion)
	e.str(a.Workspace)
	e.str(a.Account)
	e.time(a.CreatedAt)
	e.time(a.LastEventAt)
	e.strMap(a.Traits)
	e.int(int64(a.Seats))
	e.float(a.ARR)
	e.str(a.Plan)
	e.str(a.Segment)
	e.time(a.ContractEnd)
	e.float(a.UsageLimit)
	keys := sortedKeys(a.Users)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		u := a.Users[k]
		e.str(k)
		e.time(u.FirstSeen)
		e.time(u.LastSeen)
		e.bool(u.Champion)
	}
	e.timeMap(a.Features)
	keys = sortedKeys(a.HigherTier)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.uint(uint64(len(a.HigherTier[k])))
		for _, t := range a.HigherTier[k] {
			e.time(t)
		}
	}
	e.timeMap(a.LastByName)
	e.uint(uint64(len(a.Days)))
	for _, d := range a.Days {
		e.int(d.Day)
		e.int(int64(d.Product))
		names := sortedKeys(d.Named)
		e.uint(uint64(len(names)))
		for _, n := range names {
			e.str(n)
			e.int(int64(d.Named[n]))
		}
	}
	keys = sortedKeys(a.Tickets)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(a.Tickets[k].Priority)
		e.time(a.Tickets[k].OpenedAt)
	}
	e.float(a.NPS)
	e.timeMap(a.Integrations)
	e.timeMap(a.Domains)
	e.timeMap(a.Departments)
	e.uint(uint64(len(a.Outcomes)))
	for _, o := range a.Outcomes {
		e.str(o.Kind)
		e.time(o.At)
	}
	return e.b, nil
}

// UnmarshalBinary decodes MarshalBinary's output into a.
func (a *Aggregate) UnmarshalBinary(b []byte) error { return a.decode(b, nil) }

// Scratch decodes aggregates one after another into the same maps and
// slices, cleared, instead of allocating new ones (a full rescore decodes
// one aggregate per account). The aggregate Decode returned must no longer
// be used, nor anything that refers into it, once Decode is called again.
type Scratch struct {
	a        Aggregate
	users    []User
	timeMaps []map[string]time.Time
	intMaps  []map[string]int
}

// Decode decodes MarshalBinary's output, reusing the previous result's
// storage.
func (s *Scratch) Decode(b []byte) (*Aggregate, error) {
	a := &s.a
	for _, m := range []map[string]time.Time{a.Features, a.LastByName, a.Integrations, a.Domains, a.Departments} {
		if m != nil {
			clear(m)
			s.timeMaps = append(s.timeMaps, m)
		}
	}
	for _, d := range a.Days {
		if d.Named != nil {
			clear(d.Named)
			s.intMaps = append(s.intMaps, d.Named)
		}
	}
	if err := a.decode(b, s); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Aggregate) decode(b []byte, s *Scratch) error {
	if len(b) == 0 || b[0] != codecVersion {
		return errCorrupt
	}
	// Strings are cut from one copy of the input: one allocation instead of
	// one per key (an aggregate is decoded for every evaluation).
	d := dec{b: b[1:], s: string(b[1:]), scratch: s}
	// With a Scratch, a's containers are cleared and reused; without one, a
	// may share them with a copy, so they are left alone.
	var usersMap map[string]*User
	var traits map[string]string
	var tickets map[string]Ticket
	var days []Day
	var outcomes []Outcome
	if s != nil {
		usersMap, traits, tickets, days, outcomes = a.Users, a.Traits, a.Tickets, a.Days[:0], a.Outcomes[:0]
		clear(usersMap)
		clear(traits)
		clear(tickets)
	}
	*a = Aggregate{}
	a.Workspace = d.str()
	a.Account = d.str()
	a.CreatedAt = d.time()
	a.LastEventAt = d.time()
	a.Traits = d.strMap(traits)
	a.Seats = int(d.int())
	a.ARR = d.float()
	a.Plan = d.str()
	a.Segment = d.str()
	a.ContractEnd = d.time()
	a.UsageLimit = d.float()
	if n := d.count(); n > 0 {
		a.Users = usersMap
		if a.Users == nil {
			a.Users = make(map[string]*User, n)
		}
		var users []User
		if s != nil && cap(s.users) >= n {
			users = s.users[:n]
		} else {
			users = make([]User, n)
			if s != nil {
				s.users = users
			}
		}
		for i := 0; i < n && d.err == nil; i++ {
			k := d.str()
			users[i] = User{FirstSeen: d.time(), LastSeen: d.time(), Champion: d.bool()}
			a.Users[k] = &users[i]
		}
	}
	a.Features = d.timeMap()
	if n := d.count(); n > 0 {
		a.HigherTier = make(map[string][]time.Time, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.str()
			m := d.count()
			ts := make([]time.Time, 0, m)
			for j := 0; j < m && d.err == nil; j++ {
				ts = append(ts, d.time())
			}
			a.HigherTier[k] = ts
		}
	}
	a.LastByName = d.timeMap()
	if n := d.count(); n > 0 {
		a.Days = days
		if cap(a.Days) < n {
			a.Days = make([]Day, 0, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			day := Day{Day: d.int(), Product: int(d.int())}
			if m := d.count(); m > 0 {
				day.Named = d.intMap(m)
				for j := 0; j < m && d.err == nil; j++ {
					k := d.str()
					day.Named[k] = int(d.int())
				}
			}
			a.Days = append(a.Days, day)
		}
	}
	if n := d.count(); n > 0 {
		a.Tickets = tickets
		if a.Tickets == nil {
			a.Tickets = make(map[string]Ticket, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			k := d.str()
			a.Tickets[k] = Ticket{Priority: d.str(), OpenedAt: d.time()}
		}
	}
	a.NPS = d.float()
	a.Integrations = d.timeMap()
	a.Domains = d.timeMap()
	a.Departments = d.timeMap()
	if n := d.count(); n > 0 {
		a.Outcomes = outcomes
		if cap(a.Outcomes) < n {
			a.Outcomes = make([]Outcome, 0, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			a.Outcomes = append(a.Outcomes, Outcome{Kind: d.str(), At: d.time()})
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type enc struct{ b []byte }

func (e *enc) uint(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) int(v int64)     { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) float(f float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f)) }
func (e *enc) str(s string)    { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
		return
	}
	e.b = append(e.b, 0)
}
func (e *enc) strMap(m map[string]string) {
	keys := sortedKeys(m)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

// time writes 0 for the zero time, else 1, the Unix seconds and the
// nanoseconds (seconds, not UnixNano, so years outside 1678..2262 survive).
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.int(t.Unix())
	e.uint(uint64(t.Nanosecond()))
}

func (e *enc) timeMap(m map[string]time.Time) {
	keys := sortedKeys(m)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.time(m[k])
	}
}

type dec struct {
	b []byte
	// s is the whole input as a string; str returns substrings of it.
	s   string
	err error
	// scratch, when set, supplies cleared maps to reuse.
	scratch *Scratch
}

func (d *dec) intMap(n int) map[string]int {
	if s := d.scratch; s != nil && len(s.intMaps) > 0 {
		m := s.intMaps[len(s.intMaps)-1]
		s.intMaps = s.intMaps[:len(s.intMaps)-1]
		return m
	}
	return make(map[string]int, n)
}

func (d *dec) fail() { d.err, d.b = errCorrupt, nil }

func (d *dec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length and rejects one larger than the bytes left, so a
// corrupt length cannot force a huge allocation.
func (d *dec) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	at := len(d.s) - len(d.b)
	d.b = d.b[n:]
	return d.s[at : at+n]
}

func (d *dec) bool() bool {
	if len(d.b) < 1 {
		d.fail()
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *dec) time() time.Time {
	if len(d.b) < 1 {
		d.fail()
		return time.Time{}
	}
	set := d.b[0]
	d.b = d.b[1:]
	if set == 0 {
		return time.Time{}
	}
	sec := d.int()
	nsec := d.uint()
	if nsec >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *dec) strMap(reuse map[string]string) map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := reuse
	if m == nil {
		m = make(map[string]string, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

func (d *dec) timeMap() map[string]time.Time {
	n := d.count()
	if n == 0 {
		return nil
	}
	var m map[string]time.Time
	if s := d.scratch; s != nil && len(s.timeMaps) > 0 {
		m = s.timeMaps[len(s.timeMaps)-1]
		s.timeMaps = s.timeMaps[:len(s.timeMaps)-1]
	} else {
		m = make(map[string]time.Time, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = d.time()
	}
	return m
}
