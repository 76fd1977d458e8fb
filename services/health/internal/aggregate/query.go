package aggregate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// ParseWindow reads "30d", "12h" or any Go duration.
func ParseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 || d > 3650 {
			return 0, fmt.Errorf("window %q: want a positive number of days like \"30d\"", s)
		}
		return time.Duration(d) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("window %q: want \"30d\" or a positive Go duration", s)
	}
	return d, nil
}

// ActiveUsers counts users seen in (now-w, now].
func (a *Aggregate) ActiveUsers(now time.Time, w time.Duration) int {
	n := 0
	for _, u := range a.Users {
		if in(u.LastSeen, now, w) {
			n++
		}
	}
	return n
}

// NewUsers counts users first seen in (now-w, now].
func (a *Aggregate) NewUsers(now time.Time, w time.Duration) int {
	n := 0
	for _, u := range a.Users {
		if in(u.FirstSeen, now, w) {
			n++
		}
	}
	return n
}

// FeaturesUsed counts distinct features used in (now-w, now].
func (a *Aggregate) FeaturesUsed(now time.Time, w time.Duration) int {
	n := 0
	for _, t := range a.Features {
		if in(t, now, w) {
			n++
		}
	}
	return n
}

func in(t, now time.Time, w time.Duration) bool {
	return !t.IsZero() && !t.After(now) && t.After(now.Add(-w))
}

// Count sums events named name ("" = all product events) over the whole
// days in the window ending with now's day. Granularity is one day.
func (a *Aggregate) Count(now time.Time, name string, w time.Duration) int {
	last := now.Unix() / 86400
	days := int64(math.Ceil(w.Hours() / 24))
	return a.countDays(name, last-days+1, last)
}

func (a *Aggregate) countDays(name string, from, to int64) int {
	n := 0
	for _, d := range a.Days {
		if d.Day < from || d.Day > to {
			continue
		}
		if name == "" {
			n += d.Product
		} else {
			n += d.Named[name]
		}
	}
	return n
}

// Trend is the relative change of Count over the window against the window
// before it: (cur-prev)/prev; 0 when both are empty, 1 when only cur has events.
func (a *Aggregate) Trend(now time.Time, name string, w time.Duration) float64 {
	last := now.Unix() / 86400
	days := int64(math.Ceil(w.Hours() / 24))
	cur := a.countDays(name, last-days+1, last)
	prev := a.countDays(name, last-2*days+1, last-days)
	switch {
	case prev == 0 && cur == 0:
		return 0
	case prev == 0:
		return 1
	}
	return float64(cur-prev) / float64(prev)
}

// OpenTickets counts open tickets of a priority ("" = any).
func (a *Aggregate) OpenTickets(priority string) int {
	n := 0
	for _, t := range a.Tickets {
		if priority == "" || t.Priority == strings.ToLower(priority) {
			n++
		}
	}
	return n
}

// OpenTicketMaxAgeDays is the age in days of the oldest open ticket of a
// priority ("" = any); 0 when none.
func (a *Aggregate) OpenTicketMaxAgeDays(now time.Time, priority string) float64 {
	oldest := 0.0
	for _, t := range a.Tickets {
		if priority == "" || t.Priority == strings.ToLower(priority) {
			oldest = math.Max(oldest, days(now.Sub(t.OpenedAt)))
		}
	}
	return oldest
}

// DaysSince is the days since the event name was last seen; -1 when never.
func (a *Aggregate) DaysSince(now time.Time, name string) float64 {
	t, ok := a.LastByName[name]
	if !ok {
		return -1
	}
	return math.Max(0, days(now.Sub(t)))
}

// DaysSinceChampion is the days since any champion was last active; -1 when
// the account has no active champion on record.
func (a *Aggregate) DaysSinceChampion(now time.Time) float64 {
	var last time.Time
	for _, u := range a.Users {
		if u.Champion && u.LastSeen.After(last) {
			last = u.LastSeen
		}
	}
	if last.IsZero() {
		return -1
	}
	return math.Max(0, days(now.Sub(last)))
}

// HasChampion reports whether a champion is known.
func (a *Aggregate) HasChampion() bool {
	for _, u := range a.Users {
		if u.Champion {
			return true
		}
	}
	return false
}

// SeatsActiveRatio is known users per paid seat; 0 without seats.
func (a *Aggregate) SeatsActiveRatio() float64 {
	if a.Seats <= 0 {
		return 0
	}
	return float64(len(a.Users)) / float64(a.Seats)
}

// DaysSinceCreated is the account's age in days.
func (a *Aggregate) DaysSinceCreated(now time.Time) float64 {
	if a.CreatedAt.IsZero() {
		return 0
	}
	return math.Max(0, days(now.Sub(a.CreatedAt)))
}

// DaysUntilContractEnd is the days left on the contract; -1 when unknown.
func (a *Aggregate) DaysUntilContractEnd(now time.Time) float64 {
	if a.ContractEnd.IsZero() {
		return -1
	}
	return days(a.ContractEnd.Sub(now))
}

func days(d time.Duration) float64 { return d.Hours() / 24 }
