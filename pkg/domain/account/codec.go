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
const codecVersion = 2

// arrVersion is the version of an encoding that ends with the ARR history.
// Aggregates without one still encode as codecVersion, byte for byte as
// before it was added.
const arrVersion = 3

// ErrCorrupt is returned (wrapped) by Unmarshal for bytes it cannot decode.
var ErrCorrupt = errors.New("corrupt aggregates encoding")

// Marshal encodes the aggregates compactly: varints, and event names and
// user ids written once in a table that daily buckets refer to by index.
// Equal aggregates encode to equal bytes.
//
// A health consumer encodes an account after every event, so Marshal sizes
// its output up front, sorts keys into two reused slices and writes each
// day's body in place.
func (a *Aggregates) Marshal() []byte {
	w := writer{buf: make([]byte, 0, a.sizeHint())}
	w.buf = append(w.buf, codecVersion)
	w.str(a.Workspace)
	w.str(a.AccountID)
	for _, v := range [...]int64{a.Seats, a.CreatedAt, a.ContractStart, a.ContractEnd, int64(a.NPS), a.NPSAt, a.FirstEventAt, a.LastEventAt} {
		w.varint(v)
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(a.ARR))

	// keys holds the sorted keys of one section at a time.
	keys := make([]string, 0, max(len(a.Traits), len(a.Integrations), len(a.Tickets), len(a.Features),
		len(a.HigherTier), len(a.Domains), len(a.Departments)))
	keys = appendSortedKeys(keys[:0], a.Traits)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(a.Traits[k])
	}

	// Name table: every event name, then count keys missing from it. Both
	// parts are sorted, so an index is found by binary search (no maps).
	// The name and user tables share one array.
	tables := make([]string, 0, len(a.Events)+len(a.Users))
	names := appendSortedKeys(tables, a.Events)
	var extra []string
	for _, d := range a.Days {
		for n := range d.Counts {
			if !sortedHas(names, n) && !recent(extra, n) {
				extra = append(extra, n)
			}
		}
	}
	extra = sortedSet(extra)
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
	uids := appendSortedKeys(names[len(names):], a.Users)
	var extraUsers []string
	// userIdx keeps each day user's index in uids (-1: not there) for the
	// day bodies below, so that each is searched for once.
	var idxSmall [256]int32
	userIdx := idxSmall[:0]
	for _, d := range a.Days {
		for _, id := range d.Users {
			if i := sort.SearchStrings(uids, id); i < len(uids) && uids[i] == id {
				userIdx = append(userIdx, int32(i))
				continue
			}
			userIdx = append(userIdx, -1)
			if !recent(extraUsers, id) {
				extraUsers = append(extraUsers, id)
			}
		}
	}
	extraUsers = sortedSet(extraUsers)
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

	// Each day is its date delta, then its body's length and the body
	// (totals, counts, users), so that a reader can step over the days it
	// does not need (Scratch.UnmarshalFrom).
	w.uvarint(uint64(len(a.Days)))
	var prev int32
	var small [8]string
	ck := small[:0]
	for _, d := range a.Days {
		w.varint(int64(d.Day - prev))
		prev = d.Day
		at := w.openLength()
		w.uvarint(uint64(d.Total))
		w.uvarint(uint64(d.Product))
		ck = ck[:0]
		for n := range d.Counts {
			ck = append(ck, n)
		}
		if len(ck) > 1 {
			sort.Strings(ck)
		}
		w.uvarint(uint64(len(ck)))
		for _, n := range ck {
			w.uvarint(uint64(tableIndex(names, extra, n)))
			w.uvarint(uint64(d.Counts[n]))
		}
		w.uvarint(uint64(len(d.Users)))
		for _, id := range d.Users {
			i := int(userIdx[0])
			userIdx = userIdx[1:]
			if i < 0 {
				i = len(uids) + sort.SearchStrings(extraUsers, id)
			}
			w.uvarint(uint64(i))
		}
		w.closeLength(at)
	}

	keys = appendSortedKeys(keys[:0], a.Integrations)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.varint(a.Integrations[k])
	}
	keys = appendSortedKeys(keys[:0], a.Tickets)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		t := a.Tickets[k]
		w.str(k)
		w.str(t.Priority)
		w.varint(t.OpenedAt)
	}
	w.health(a, keys)
	if len(a.ARRHistory) > 0 {
		w.buf[0] = arrVersion
		w.uvarint(uint64(len(a.ARRHistory)))
		for _, c := range a.ARRHistory {
			w.varint(c.At)
			w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(c.ARR))
		}
	}
	return w.buf
}

// sizeHint estimates Marshal's output length from the sizes of a's parts,
// so that the output is allocated once in the common case.
func (a *Aggregates) sizeHint() int {
	n := 64 + len(a.Workspace) + len(a.AccountID) + 24*(len(a.Traits)+len(a.Events)+len(a.Integrations)+
		len(a.Tickets)+len(a.Features)+len(a.HigherTier)+len(a.Domains)+len(a.Departments)+len(a.Outcomes)+
		len(a.Users)) + len(a.ChampionID) + 16*len(a.ARRHistory)
	perUser := 1 // a user's index takes one byte up to 127 users
	if len(a.Users) >= 128 {
		perUser = 2
	}
	for i := range a.Days {
		n += 6 + 4*len(a.Days[i].Counts) + perUser*len(a.Days[i].Users)
	}
	return n
}

// Unmarshal decodes what Marshal wrote, in this or the previous layout
// (version 1, without the health facts). It never panics on arbitrary input.
// The result's strings share one copy of b.
func Unmarshal(b []byte) (*Aggregates, error) {
	a := &Aggregates{}
	if err := decode(a, b, nil, math.MinInt32); err != nil {
		return nil, err
	}
	return a, nil
}

// Scratch decodes aggregates into storage reused from the previous decode:
// maps, day buckets and users. A full rescore decodes every account of a
// workspace once and drops it, so reuse saves most of the allocation. The
// zero value is ready; it is not safe for concurrent use.
type Scratch struct {
	agg   Aggregates
	names []string
	uids  []string
	users []User
	// counts and userLists keep the day maps and user lists of earlier
	// decodes for reuse.
	counts    []map[string]int32
	userLists [][]string
	// interned holds the names, user ids and trait strings seen so far:
	// accounts of one workspace share most of them, so decoding them
	// allocates once per Scratch instead of once per account.
	interned map[string]string
}

// maxInterned bounds Scratch.interned.
const maxInterned = 1 << 14

// Unmarshal decodes b like the package's Unmarshal. The result, and every
// map and slice in it, is only valid until the next call.
func (s *Scratch) Unmarshal(b []byte) (*Aggregates, error) {
	return s.UnmarshalFrom(b, math.MinInt32)
}

// UnmarshalFrom is Unmarshal stepping over the daily buckets before day
// from (DayOf): a long history decodes in a fraction of the time, and
// programs whose Env.Horizon reaches no further back evaluate as on the
// whole aggregates. A version 1 encoding, whose days are not framed, is
// decoded whole. The result must not be re-encoded or updated.
func (s *Scratch) UnmarshalFrom(b []byte, from int32) (*Aggregates, error) {
	a := &s.agg
	for _, d := range a.Days {
		if d.Counts != nil {
			clear(d.Counts)
			s.counts = append(s.counts, d.Counts)
		}
		if cap(d.Users) > 0 {
			s.userLists = append(s.userLists, d.Users[:0])
		}
	}
	if s.interned == nil {
		s.interned = make(map[string]string, 256)
	}
	days := a.Days[:0]
	outcomes := a.Outcomes[:0]
	arrs := a.ARRHistory[:0]
	maps := []map[string]int64{a.Integrations, a.Features, a.Domains, a.Departments}
	for _, m := range maps {
		clear(m)
	}
	clear(a.Events)
	clear(a.Users)
	clear(a.Traits)
	clear(a.Tickets)
	clear(a.HigherTier)
	*a = Aggregates{
		Events: a.Events, Users: a.Users, Traits: a.Traits, Tickets: a.Tickets, HigherTier: a.HigherTier,
		Integrations: maps[0], Features: maps[1], Domains: maps[2], Departments: maps[3],
		Days: days, Outcomes: outcomes, ARRHistory: arrs,
	}
	s.users = s.users[:0]
	if err := decode(a, b, s, from); err != nil {
		// Leave no half-decoded state behind for the next call to trust.
		*a = Aggregates{}
		return nil, err
	}
	return a, nil
}

func (s *Scratch) dayCounts(n int) map[string]int32 {
	if s != nil && len(s.counts) > 0 {
		m := s.counts[len(s.counts)-1]
		s.counts = s.counts[:len(s.counts)-1]
		return m
	}
	return make(map[string]int32, n)
}

func (s *Scratch) dayUsers() []string {
	if s != nil && len(s.userLists) > 0 {
		l := s.userLists[len(s.userLists)-1]
		s.userLists = s.userLists[:len(s.userLists)-1]
		return l
	}
	return nil
}

func (s *Scratch) user() *User {
	if len(s.users) == cap(s.users) {
		// Earlier users stay referenced by the map: grow into a new array.
		s.users = make([]User, 0, max(16, 2*cap(s.users)))
	}
	s.users = s.users[:len(s.users)+1]
	u := &s.users[len(s.users)-1]
	*u = User{}
	return u
}

// decode fills a (whose maps may be nil or empty) from b, skipping the
// daily buckets before day from.
func decode(a *Aggregates, b []byte, s *Scratch, from int32) error {
	r := reader{buf: b}
	if s == nil {
		// Strings are cut from one copy of the input: one allocation
		// instead of one per name, user id and trait.
		r.whole, r.total = string(b), len(b)
	}
	version := r.byte()
	if version != 1 && version != codecVersion && version != arrVersion {
		return fmt.Errorf("decode aggregates: version %d: %w", version, ErrCorrupt)
	}
	a.Workspace, a.AccountID = r.str(), r.str()
	if s != nil {
		r.intern = s.interned
	}
	a.ensureMaps()
	a.Seats, a.CreatedAt, a.ContractStart, a.ContractEnd = r.varint(), r.varint(), r.varint(), r.varint()
	a.NPS = int32(r.varint())
	a.NPSAt, a.FirstEventAt, a.LastEventAt = r.varint(), r.varint(), r.varint()
	a.ARR = math.Float64frombits(r.u64())

	for n := r.count(2); n > 0 && r.err == nil; n-- {
		k := r.str()
		a.Traits[k] = r.str()
	}
	var names, uids []string
	nn := r.count(3)
	if s != nil {
		names, uids = s.names[:0], s.uids[:0]
	} else {
		names = make([]string, 0, nn)
	}
	for n := nn; n > 0 && r.err == nil; n-- {
		name := r.str()
		names = append(names, name)
		first, last := r.varint(), r.varint()
		if first != 0 || last != 0 {
			a.Events[name] = Span{First: first, Last: last}
		}
	}
	nu := r.count(8)
	var block []User // one allocation for every user of a plain decode
	if s == nil {
		block = make([]User, 0, nu)
		uids = make([]string, 0, nu)
	}
	for ; nu > 0 && r.err == nil; nu-- {
		var u *User
		if s == nil {
			block = block[:len(block)+1]
			u = &block[len(block)-1]
		} else {
			u = s.user()
		}
		u.ID, u.EmailDomain, u.Department, u.Title, u.Role, u.Persona = r.str(), r.str(), r.str(), r.str(), r.str(), r.str()
		u.FirstSeen, u.LastSeen = r.varint(), r.varint()
		a.Users[u.ID] = u
		uids = append(uids, u.ID)
	}
	for n := r.count(1); n > 0 && r.err == nil; n-- {
		uids = append(uids, r.str())
	}
	if s != nil {
		s.names, s.uids = names, uids
	}
	nd := r.count(4)
	if nd > 0 && a.Days == nil {
		a.Days = make([]Day, 0, nd)
	}
	var prev int64
	framed := version >= 2
	// dayUsers holds the user lists of a plain decode's days, cut with
	// their capacity so that appending to one (Apply) copies it first.
	var dayUsers []string
	for ; nd > 0 && r.err == nil; nd-- {
		prev += r.varint()
		if prev < math.MinInt32 || prev > math.MaxInt32 {
			r.fail("day out of range")
			break
		}
		var end int // bytes left after the day's body (framed layout)
		if framed {
			n := r.uvarint()
			if n > uint64(len(r.buf)) {
				r.fail("day exceeds input")
				break
			}
			if int32(prev) < from && len(a.Days) == 0 {
				r.buf = r.buf[n:] // step over a day before from
				continue
			}
			end = len(r.buf) - int(n)
		}
		d := Day{Day: int32(prev), Total: int32(r.uvarint())}
		if framed {
			d.Product = int32(r.uvarint())
		}
		nc := r.count(2)
		d.Counts = s.dayCounts(nc)
		d.Users = s.dayUsers()
		for ; nc > 0 && r.err == nil; nc-- {
			i := r.uvarint()
			c := r.uvarint()
			if i >= uint64(len(names)) {
				r.fail("name index out of range")
				break
			}
			d.Counts[names[i]] = int32(c)
		}
		nu := r.count(1)
		if d.Users == nil && nu > 0 {
			if cap(dayUsers)-len(dayUsers) < nu {
				// Room for this day's users at most once per remaining day,
				// and never more than the remaining bytes can index (one
				// byte per user at least), so input cannot force a large one.
				dayUsers = make([]string, 0, max(nu, min(nu*nd, len(r.buf))))
			}
			l := len(dayUsers)
			d.Users = dayUsers[l : l : l+nu]
			dayUsers = dayUsers[:l+nu]
		}
		for n := nu; n > 0 && r.err == nil; n-- {
			i := r.uvarint()
			if i >= uint64(len(uids)) {
				r.fail("user index out of range")
				break
			}
			d.Users = append(d.Users, uids[i])
		}
		if framed && r.err == nil && len(r.buf) != end {
			r.fail("day length mismatch")
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
	if version >= 2 {
		decodeHealth(a, &r)
	}
	if version >= arrVersion {
		for n := r.count(9); n > 0 && r.err == nil; n-- {
			a.ARRHistory = append(a.ARRHistory, ARRChange{At: r.varint(), ARR: math.Float64frombits(r.u64())})
		}
	}
	if r.err == nil && len(r.buf) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return fmt.Errorf("decode aggregates: %w", r.err)
	}
	for i := 1; i < len(a.Days); i++ {
		if a.Days[i].Day <= a.Days[i-1].Day {
			return fmt.Errorf("decode aggregates: days out of order: %w", ErrCorrupt)
		}
	}
	return nil
}

// health writes the facts added in version 2; keys is storage for sorting
// map keys.
func (w *writer) health(a *Aggregates, keys []string) {
	keys = w.times(a.Features, keys)
	keys = appendSortedKeys(keys[:0], a.HigherTier)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.uvarint(uint64(len(a.HigherTier[k])))
		for _, t := range a.HigherTier[k] {
			w.varint(t)
		}
	}
	keys = w.times(a.Domains, keys)
	w.times(a.Departments, keys)
	w.uvarint(uint64(len(a.Outcomes)))
	for _, o := range a.Outcomes {
		w.str(o.Kind)
		w.varint(o.At)
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(a.UsageLimit))
	w.str(a.ChampionID)
}

// times writes m sorted by key, using keys as storage; it returns keys
// for reuse.
func (w *writer) times(m map[string]int64, keys []string) []string {
	keys = appendSortedKeys(keys[:0], m)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.varint(m[k])
	}
	return keys
}

func decodeHealth(a *Aggregates, r *reader) {
	r.times(a.Features)
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		k := r.str()
		nt := r.count(1)
		uses := make([]int64, 0, nt)
		for ; nt > 0 && r.err == nil; nt-- {
			uses = append(uses, r.varint())
		}
		a.HigherTier[k] = uses
	}
	r.times(a.Domains)
	r.times(a.Departments)
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		a.Outcomes = append(a.Outcomes, Outcome{Kind: r.str(), At: r.varint()})
	}
	a.UsageLimit = math.Float64frombits(r.u64())
	a.ChampionID = r.str()
}

func (r *reader) times(m map[string]int64) {
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		k := r.str()
		m[k] = r.varint()
	}
}

// sortedHas reports whether sorted holds s.
func sortedHas(sorted []string, s string) bool {
	i := sort.SearchStrings(sorted, s)
	return i < len(sorted) && sorted[i] == s
}

// recent reports whether s is among the last few strings of list: names
// missing from a table repeat from day to day, and skipping them keeps the
// list short before sortedSet drops the remaining duplicates.
func recent(list []string, s string) bool {
	for i := len(list) - 1; i >= 0 && i >= len(list)-4; i-- {
		if list[i] == s {
			return true
		}
	}
	return false
}

// sortedSet sorts list and drops duplicates, in place.
func sortedSet(list []string) []string {
	if len(list) < 2 {
		return list
	}
	sort.Strings(list)
	out := list[:1]
	for _, s := range list[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

// tableIndex is s's index in a table written as first then second, both
// sorted, s in one of them.
func tableIndex(first, second []string, s string) int {
	if i := sort.SearchStrings(first, s); i < len(first) && first[i] == s {
		return i
	}
	return len(first) + sort.SearchStrings(second, s)
}

// appendSortedKeys appends m's keys to dst and sorts the appended part.
func appendSortedKeys[V any](dst []string, m map[string]V) []string {
	n := len(dst)
	for k := range m {
		dst = append(dst, k)
	}
	if len(dst)-n > 1 {
		sort.Strings(dst[n:])
	}
	return dst
}

type writer struct{ buf []byte }

// openLength reserves one byte for the length of what follows, which
// closeLength(at) fills in (moving the body when the length needs more).
func (w *writer) openLength() int {
	w.buf = append(w.buf, 0)
	return len(w.buf) - 1
}

func (w *writer) closeLength(at int) {
	n := len(w.buf) - at - 1
	if n < 0x80 {
		w.buf[at] = byte(n)
		return
	}
	extra := uvarintLen(uint64(n)) - 1
	for i := 0; i < extra; i++ {
		w.buf = append(w.buf, 0)
	}
	copy(w.buf[at+1+extra:], w.buf[at+1:at+1+n])
	binary.PutUvarint(w.buf[at:], uint64(n))
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func (w *writer) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *writer) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }
func (w *writer) str(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

type reader struct {
	buf []byte
	err error
	// whole, when set, is the input as one string (total bytes long) that
	// str returns substrings of.
	whole string
	total int
	// intern, when set, dedups the strings read (see Scratch.interned).
	intern map[string]string
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
	if r.whole != "" {
		off := r.total - len(r.buf)
		r.buf = r.buf[n:]
		return r.whole[off : off+int(n)]
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	if r.intern == nil || n == 0 {
		return string(b)
	}
	if s, ok := r.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.intern) < maxInterned {
		r.intern[s] = s
	}
	return s
}
