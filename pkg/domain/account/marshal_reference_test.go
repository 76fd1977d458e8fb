package account

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// marshalReference is Marshal as it was before the allocation cuts: the
// new one must give the same bytes. Marshal encodes the aggregates compactly: varints, and event names and
// user ids written once in a table that daily buckets refer to by index.
// Equal aggregates encode to equal bytes.
func marshalReference(a *Aggregates) []byte {
	w := writer{buf: make([]byte, 0, 512)}
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

	// Name table: every event name, then count keys missing from it. Both
	// parts are sorted, so an index is found by binary search (no maps: a
	// health consumer encodes an account after every event).
	names := sortedKeys(a.Events)
	var extra []string
	for _, d := range a.Days {
		for n := range d.Counts {
			if !sortedHas(names, n) {
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
	uids := sortedKeys(a.Users)
	var extraUsers []string
	for _, d := range a.Days {
		for _, id := range d.Users {
			if !sortedHas(uids, id) {
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
	var ck []string
	body := writer{}
	for _, d := range a.Days {
		w.varint(int64(d.Day - prev))
		prev = d.Day
		body.buf = body.buf[:0]
		body.uvarint(uint64(d.Total))
		body.uvarint(uint64(d.Product))
		ck = ck[:0]
		for n := range d.Counts {
			ck = append(ck, n)
		}
		sort.Strings(ck)
		body.uvarint(uint64(len(ck)))
		for _, n := range ck {
			body.uvarint(uint64(tableIndex(names, extra, n)))
			body.uvarint(uint64(d.Counts[n]))
		}
		body.uvarint(uint64(len(d.Users)))
		for _, id := range d.Users {
			body.uvarint(uint64(tableIndex(uids, extraUsers, id)))
		}
		w.uvarint(uint64(len(body.buf)))
		w.buf = append(w.buf, body.buf...)
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
	healthReference(&w, a)
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

func healthReference(w *writer, a *Aggregates) {
	timesReference(w, a.Features)
	hk := sortedKeys(a.HigherTier)
	w.uvarint(uint64(len(hk)))
	for _, k := range hk {
		w.str(k)
		w.uvarint(uint64(len(a.HigherTier[k])))
		for _, t := range a.HigherTier[k] {
			w.varint(t)
		}
	}
	timesReference(w, a.Domains)
	timesReference(w, a.Departments)
	w.uvarint(uint64(len(a.Outcomes)))
	for _, o := range a.Outcomes {
		w.str(o.Kind)
		w.varint(o.At)
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(a.UsageLimit))
	w.str(a.ChampionID)
}

func timesReference(w *writer, m map[string]int64) {
	keys := sortedKeys(m)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.varint(m[k])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestMarshalMatchesReference checks that Marshal gives the bytes of the
// encoder it replaced: fixtures, random aggregates, day bodies longer than
// one length byte, and counts and users missing from the tables.
func TestMarshalMatchesReference(t *testing.T) {
	cases := []*Aggregates{New("w", "a"), fixture(t), healthFixture(t)}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		a := New("w", fmt.Sprintf("a%d", i))
		a.Seats, a.ARR, a.NPS = int64(rng.IntN(50)), float64(rng.IntN(9000)), int32(rng.IntN(11))
		for k := 0; k < rng.IntN(4); k++ {
			a.Traits[fmt.Sprintf("t%d", rng.IntN(9))] = fmt.Sprint(rng.IntN(5))
		}
		for k := 0; k < rng.IntN(6); k++ {
			a.Events[fmt.Sprintf("e%d", rng.IntN(9))] = Span{First: int64(rng.IntN(100)), Last: int64(100 + rng.IntN(100))}
		}
		users := rng.IntN(150)
		for k := 0; k < users; k++ {
			id := fmt.Sprintf("u%03d", k)
			if rng.IntN(4) > 0 { // the others only appear in day lists
				a.Users[id] = &User{ID: id, EmailDomain: "x.io", FirstSeen: int64(k), LastSeen: int64(k + 9)}
			}
		}
		for d := int32(0); d < int32(rng.IntN(40)); d++ {
			day := Day{Day: 20000 + 2*d, Counts: map[string]int32{}, Total: rng.Int32N(300)}
			for k := 0; k < rng.IntN(5); k++ {
				day.Counts[fmt.Sprintf("e%d", rng.IntN(12))] = rng.Int32N(200000)
			}
			for k := 0; k < users; k++ {
				if rng.IntN(3) == 0 {
					day.Users = append(day.Users, fmt.Sprintf("u%03d", k))
				}
			}
			a.Days = append(a.Days, day)
		}
		for k := 0; k < rng.IntN(3); k++ {
			a.Integrations[fmt.Sprintf("i%d", k)] = int64(k)
			a.Tickets[fmt.Sprintf("k%d", k)] = Ticket{Priority: "p1", OpenedAt: int64(k)}
			a.Features[fmt.Sprintf("f%d", k)] = int64(k)
			a.HigherTier[fmt.Sprintf("h%d", k)] = []int64{int64(k), 7}
			a.Domains[fmt.Sprintf("d%d", k)] = int64(k)
			a.Departments[fmt.Sprintf("p%d", k)] = int64(k)
			a.Outcomes = append(a.Outcomes, Outcome{Kind: "renewed", At: int64(k)})
		}
		cases = append(cases, a)
	}
	// Day bodies of 2 to 600 bytes: lengths of one, two and three bytes.
	for _, users := range []int{1, 60, 127, 128, 300} {
		a := New("w", "big")
		day := Day{Day: 20000, Counts: map[string]int32{"x": 1}, Total: 1}
		for k := 0; k < users; k++ {
			id := fmt.Sprintf("u%03d", k)
			a.Users[id] = &User{ID: id}
			day.Users = append(day.Users, id)
		}
		a.Days = append(a.Days, day, Day{Day: 20001, Total: 2})
		cases = append(cases, a)
	}
	for i, a := range cases {
		if got, want := a.Marshal(), marshalReference(a); !bytes.Equal(got, want) {
			t.Fatalf("case %d: Marshal differs from the reference encoder", i)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	a := healthFixture(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = a.Marshal()
	}
}

// TestUnmarshalDayUsersDoNotAlias checks that growing one decoded day's
// user list (the lists share one array) leaves the next day's alone.
func TestUnmarshalDayUsersDoNotAlias(t *testing.T) {
	a := New("w", "a")
	for d := int32(0); d < 3; d++ {
		a.Days = append(a.Days, Day{Day: 20000 + d, Total: 1, Users: []string{"u1", "u2"}})
	}
	b, err := Unmarshal(a.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	b.Days[0].Users = append(b.Days[0].Users, "u3")
	b.Days[1].Users = append(b.Days[1].Users[:1], "u9", "u8")
	for i, want := range [][]string{{"u1", "u2", "u3"}, {"u1", "u9", "u8"}, {"u1", "u2"}} {
		if fmt.Sprint(b.Days[i].Users) != fmt.Sprint(want) {
			t.Errorf("day %d users = %v, want %v", i, b.Days[i].Users, want)
		}
	}
}
