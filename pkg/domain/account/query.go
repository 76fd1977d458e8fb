package account

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Never is what day-distance functions return for something that never
// happened: large enough that "days_since(x) > 14" holds and "< 14" does not.
const Never = 100000

// ParseWindow parses a window such as "14d" or "4w" into days. Windows run
// from 1 day to KeepDays days, because older buckets are not kept.
func ParseWindow(s string) (int, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("window %q: want a number of days or weeks such as \"14d\" or \"4w\"", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("window %q: want a positive number before the unit", s)
	}
	switch s[len(s)-1] {
	case 'd':
	case 'w':
		n *= 7
	default:
		return 0, fmt.Errorf("window %q: unit must be d (days) or w (weeks)", s)
	}
	if n > KeepDays {
		return 0, fmt.Errorf("window %q: longer than the %d days kept", s, KeepDays)
	}
	return n, nil
}

// dayRange returns the indexes [lo, hi) of a.Days with lo < Day <= hi.
func (a *Aggregates) dayRange(loExcl, hiIncl int32) (int, int) {
	lo := sort.Search(len(a.Days), func(i int) bool { return a.Days[i].Day > loExcl })
	hi := sort.Search(len(a.Days), func(i int) bool { return a.Days[i].Day > hiIncl })
	return lo, hi
}

// Count is the number of events named name (EventAny for all, "" for
// product events, see Day.Product) in the window of days days ending on
// now's day.
func (a *Aggregates) Count(name string, days int, now time.Time) int64 {
	d := DayOf(now)
	return a.countBetween(name, d-int32(days), d)
}

func (a *Aggregates) countBetween(name string, loExcl, hiIncl int32) int64 {
	lo, hi := a.dayRange(loExcl, hiIncl)
	var n int64
	for i := lo; i < hi; i++ {
		switch name {
		case EventAny:
			n += int64(a.Days[i].Total)
		case "":
			n += int64(a.Days[i].Product)
		default:
			n += int64(a.Days[i].Counts[name])
		}
	}
	return n
}

// CountAfterCreated counts events named name between fromDay (inclusive)
// and toDay (exclusive) days after the account was created, e.g. 0..14 for a
// first-two-weeks baseline.
func (a *Aggregates) CountAfterCreated(name string, fromDay, toDay int) int64 {
	c := a.Created()
	if c == 0 || toDay <= fromDay {
		return 0
	}
	base := dayOfUnix(c)
	return a.countBetween(name, base+int32(fromDay)-1, base+int32(toDay)-1)
}

// Trend compares the count in the window ending now with the window before
// it: current/previous - 1. With no previous events it is 1 when there are
// current events and 0 when there are none.
func (a *Aggregates) Trend(name string, days int, now time.Time) float64 {
	d := DayOf(now)
	cur := a.countBetween(name, d-int32(days), d)
	prev := a.countBetween(name, d-2*int32(days), d-int32(days))
	return ratio(float64(cur), float64(prev))
}

func ratio(cur, prev float64) float64 {
	if prev == 0 {
		if cur == 0 {
			return 0
		}
		return 1
	}
	// (cur-prev)/prev, not cur/prev-1: 42 against 60 is exactly -30%, which
	// cur/prev-1 rounds to -0.30000000000000004.
	return (cur - prev) / prev
}

// ActiveUsers is the number of distinct active users in the window. Windows
// longer than KeepUserDays only see the users of the last KeepUserDays days.
func (a *Aggregates) ActiveUsers(days int, now time.Time) int {
	d := DayOf(now)
	return a.activeBetween(d-int32(days), d)
}

func (a *Aggregates) activeBetween(loExcl, hiIncl int32) int {
	lo, hi := a.dayRange(loExcl, hiIncl)
	if lo >= hi {
		return 0
	}
	if hi-lo == 1 {
		return len(a.Days[lo].Users)
	}
	// Most accounts have a handful of active users: collect them in a small
	// array with a linear membership test, and fall back to a map only for
	// large ones (health evaluates this for every account of a rescore).
	var small [32]string
	distinct := small[:0]
	for i := lo; i < hi; i++ {
		for _, u := range a.Days[i].Users {
			if !contains(distinct, u) {
				if len(distinct) == len(small) {
					return a.activeBetweenMap(lo, hi)
				}
				distinct = append(distinct, u)
			}
		}
	}
	return len(distinct)
}

func (a *Aggregates) activeBetweenMap(lo, hi int) int {
	seen := make(map[string]struct{}, 64)
	for i := lo; i < hi; i++ {
		for _, u := range a.Days[i].Users {
			seen[u] = struct{}{}
		}
	}
	return len(seen)
}

// ActiveUsersTrend compares distinct active users in the window ending now
// with the window before it, like Trend.
func (a *Aggregates) ActiveUsersTrend(days int, now time.Time) float64 {
	d := DayOf(now)
	cur := a.activeBetween(d-int32(days), d)
	prev := a.activeBetween(d-2*int32(days), d-int32(days))
	return ratio(float64(cur), float64(prev))
}

// FeaturesUsed is the number of distinct features used in the window: of
// features when the definition lists them, else of every product feature
// recorded in Features.
func (a *Aggregates) FeaturesUsed(features []string, days int, now time.Time) int {
	d := DayOf(now)
	if len(features) == 0 {
		n := 0
		for _, t := range a.Features {
			if fd := dayOfUnix(t); fd > d-int32(days) && fd <= d {
				n++
			}
		}
		return n
	}
	lo, hi := a.dayRange(d-int32(days), d)
	n := 0
	for _, f := range features {
		for i := lo; i < hi; i++ {
			if a.Days[i].Counts[f] > 0 {
				n++
				break
			}
		}
	}
	return n
}

// NewUsers is the number of users first seen in the window.
func (a *Aggregates) NewUsers(days int, now time.Time) int {
	d := DayOf(now)
	n := 0
	for _, u := range a.Users {
		fd := dayOfUnix(u.FirstSeen)
		if fd > d-int32(days) && fd <= d {
			n++
		}
	}
	return n
}

// DaysSince is the whole days from when name was last seen to now (EventAny
// for any event); Never when it was not seen.
func (a *Aggregates) DaysSince(name string, now time.Time) int64 {
	var last int64
	if name == EventAny {
		last = a.LastEventAt
	} else if sp, ok := a.Events[name]; ok {
		last = sp.Last
	}
	if last == 0 {
		return Never
	}
	return daysBetween(last, now.Unix())
}

func daysBetween(from, to int64) int64 {
	if to < from {
		return 0
	}
	return (to - from) / 86400
}

// Created is when the account was created: the created_at trait, else its
// first event.
func (a *Aggregates) Created() int64 {
	if a.CreatedAt != 0 {
		return a.CreatedAt
	}
	return a.FirstEventAt
}

// SeatsActiveRatio is active users in the last 30 days over seats; 0 when
// seats are unknown.
func (a *Aggregates) SeatsActiveRatio(now time.Time) float64 {
	if a.Seats <= 0 {
		return 0
	}
	return float64(a.ActiveUsers(30, now)) / float64(a.Seats)
}

// OpenTickets counts open tickets of a priority ("" for any).
func (a *Aggregates) OpenTickets(priority string) int {
	n := 0
	for _, t := range a.Tickets {
		if priority == "" || t.Priority == priority {
			n++
		}
	}
	return n
}

// OpenTicketMaxAgeDays is the age in days of the oldest open ticket of a
// priority ("" for any); 0 when none is open.
func (a *Aggregates) OpenTicketMaxAgeDays(priority string, now time.Time) int64 {
	var oldest int64
	for _, t := range a.Tickets {
		if (priority == "" || t.Priority == priority) && (oldest == 0 || t.OpenedAt < oldest) {
			oldest = t.OpenedAt
		}
	}
	if oldest == 0 {
		return 0
	}
	return daysBetween(oldest, now.Unix())
}

// PersonaLastSeen is the last time any user of the persona sent an event
// (Unix seconds), 0 when none did.
func (a *Aggregates) PersonaLastSeen(persona string) int64 {
	var last int64
	for _, u := range a.Users {
		if u.LastSeen > last && PersonaOf(u) == persona {
			last = u.LastSeen
		}
	}
	return last
}

// IsChampion reports whether u is a champion: the user named by the group
// trait champion_user_id, or one whose persona is champion.
func (a *Aggregates) IsChampion(u *User) bool {
	return u.ID == a.ChampionID || PersonaOf(u) == PersonaChampion
}

// HasChampion reports whether a champion is known.
func (a *Aggregates) HasChampion() bool {
	if _, ok := a.Users[a.ChampionID]; ok {
		return true
	}
	for _, u := range a.Users {
		if PersonaOf(u) == PersonaChampion {
			return true
		}
	}
	return false
}

// ChampionLastSeen is the last time any champion sent an event (Unix
// seconds), 0 when there is none.
func (a *Aggregates) ChampionLastSeen() int64 {
	var last int64
	if u, ok := a.Users[a.ChampionID]; ok {
		last = u.LastSeen
	}
	for _, u := range a.Users {
		if u.LastSeen > last && PersonaOf(u) == PersonaChampion {
			last = u.LastSeen
		}
	}
	return last
}

// daysUntil is whole days from now to t, negative when past, Never when t is 0.
func daysUntil(t int64, now time.Time) int64 {
	if t == 0 {
		return Never
	}
	return int64(math.Floor(float64(t-now.Unix()) / 86400))
}
