// Package hours does business-hours arithmetic in an owner's IANA time zone:
// weekly working hours, local holidays and out-of-office windows.
//
// Working intervals are materialised per local calendar day as absolute
// instants (time.Date in the owner's location), so a DST change never adds or
// removes business time from a 09:00-17:00 day, and an interval that spans the
// change (e.g. 00:00-24:00) counts the real elapsed time.
package hours

import (
	"fmt"
	"sort"
	"time"
)

// maxDays bounds the day-by-day walk so that a calendar whose working time is
// entirely covered by holidays or a very long absence cannot loop forever.
const maxDays = 366 * 10

// Day is one weekday's working interval, in local "HH:MM" (end may be "24:00").
type Day struct {
	// Weekday is the local weekday the interval belongs to.
	Weekday time.Weekday
	// Start is the local start time, "09:00".
	Start string
	// End is the local end time, "17:00"; it must be after Start.
	End string
}

// Window is an absolute half-open interval [Start, End), e.g. out of office.
type Window struct {
	// Start is inclusive; the zero time means open-ended in the past.
	Start time.Time
	// End is exclusive; the zero time means open-ended in the future.
	End time.Time
}

// span is a local clock interval in minutes since midnight.
type span struct{ start, end int }

// Calendar answers business-time questions for one owner.
type Calendar struct {
	loc      *time.Location
	week     [7][]span
	holidays map[string]bool
	away     []Window
}

// DefaultWeek is Monday to Friday, 09:00-17:00.
func DefaultWeek() []Day {
	days := make([]Day, 0, 5)
	for d := time.Monday; d <= time.Friday; d++ {
		days = append(days, Day{Weekday: d, Start: "09:00", End: "17:00"})
	}
	return days
}

// New builds a calendar. An empty days slice means DefaultWeek; holidays are
// local dates "YYYY-MM-DD".
func New(loc *time.Location, days []Day, holidays []string, away []Window) (*Calendar, error) {
	if loc == nil {
		loc = time.UTC
	}
	if len(days) == 0 {
		days = DefaultWeek()
	}
	c := &Calendar{loc: loc, holidays: make(map[string]bool, len(holidays))}
	for i, d := range days {
		if d.Weekday < time.Sunday || d.Weekday > time.Saturday {
			return nil, fmt.Errorf("working_hours[%d].weekday: %d is not 0..6", i, d.Weekday)
		}
		s, err := parseClock(d.Start)
		if err != nil {
			return nil, fmt.Errorf("working_hours[%d].start: %w", i, err)
		}
		e, err := parseClock(d.End)
		if err != nil {
			return nil, fmt.Errorf("working_hours[%d].end: %w", i, err)
		}
		if e <= s {
			return nil, fmt.Errorf("working_hours[%d]: end %s is not after start %s", i, d.End, d.Start)
		}
		c.week[d.Weekday] = append(c.week[d.Weekday], span{s, e})
	}
	for wd := range c.week {
		sort.Slice(c.week[wd], func(i, j int) bool { return c.week[wd][i].start < c.week[wd][j].start })
		for i := 1; i < len(c.week[wd]); i++ {
			if c.week[wd][i].start < c.week[wd][i-1].end {
				return nil, fmt.Errorf("working_hours: overlapping intervals on %s", time.Weekday(wd))
			}
		}
	}
	for i, h := range holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			return nil, fmt.Errorf("holidays[%d]: %q is not YYYY-MM-DD", i, h)
		}
		c.holidays[h] = true
	}
	for _, w := range away {
		if !w.End.IsZero() && !w.Start.IsZero() && !w.End.After(w.Start) {
			continue
		}
		c.away = append(c.away, w)
	}
	return c, nil
}

// parseClock parses "HH:MM" into minutes since midnight; "24:00" is allowed.
func parseClock(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return h*60 + m, nil
}

// Location returns the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// Away reports whether t falls inside an out-of-office window.
func (c *Calendar) Away(t time.Time) bool {
	for _, w := range c.away {
		if (w.Start.IsZero() || !t.Before(w.Start)) && (w.End.IsZero() || t.Before(w.End)) {
			return true
		}
	}
	return false
}

// Working reports whether t is inside working hours (and not on a holiday or
// out of office).
func (c *Calendar) Working(t time.Time) bool {
	for _, iv := range c.day(localDate(t.In(c.loc))) {
		if !t.Before(iv.Start) && t.Before(iv.End) {
			return true
		}
	}
	return false
}

// AddBusiness returns the instant at which d of business time has elapsed
// after start. With d == 0 it returns the first working instant at or after
// start. If no working time exists within ten years it returns
// start.Add(d), so callers always get a usable deadline.
func (c *Calendar) AddBusiness(start time.Time, d time.Duration) time.Time {
	if d < 0 {
		d = 0
	}
	remaining := d
	day := localDate(start.In(c.loc))
	for range maxDays {
		for _, iv := range c.day(day) {
			if !iv.End.After(start) {
				continue
			}
			s := iv.Start
			if s.Before(start) {
				s = start
			}
			avail := iv.End.Sub(s)
			if remaining <= avail {
				return s.Add(remaining)
			}
			remaining -= avail
		}
		day = day.AddDate(0, 0, 1)
	}
	return start.Add(d)
}

// BusinessBetween returns the business time elapsed in [a, b); zero if b is
// not after a. Spans longer than ten years count only their first ten years,
// which bounds the work a caller-supplied instant can cause.
func (c *Calendar) BusinessBetween(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	var total time.Duration
	last := localDate(b.In(c.loc))
	first := localDate(a.In(c.loc))
	if limit := first.AddDate(0, 0, maxDays); last.After(limit) {
		last = limit
	}
	for day := first; !day.After(last); day = day.AddDate(0, 0, 1) {
		for _, iv := range c.day(day) {
			s, e := iv.Start, iv.End
			if s.Before(a) {
				s = a
			}
			if e.After(b) {
				e = b
			}
			if e.After(s) {
				total += e.Sub(s)
			}
		}
	}
	return total
}

// localDate is midnight UTC of t's local calendar date; it is only used as a
// day counter, never as an instant.
func localDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// day returns the absolute working intervals of one local date, minus
// holidays and out-of-office windows, in order.
func (c *Calendar) day(date time.Time) []Window {
	if c.holidays[date.Format(time.DateOnly)] {
		return nil
	}
	spans := c.week[date.Weekday()]
	if len(spans) == 0 {
		return nil
	}
	y, m, d := date.Date()
	out := make([]Window, 0, len(spans))
	for _, sp := range spans {
		w := Window{
			Start: time.Date(y, m, d, 0, sp.start, 0, 0, c.loc),
			End:   time.Date(y, m, d, 0, sp.end, 0, 0, c.loc),
		}
		out = append(out, c.subtractAway(w)...)
	}
	return out
}

// subtractAway removes out-of-office windows from w.
func (c *Calendar) subtractAway(w Window) []Window {
	parts := []Window{w}
	for _, a := range c.away {
		var next []Window
		for _, p := range parts {
			aStart, aEnd := a.Start, a.End
			if aStart.IsZero() || aStart.Before(p.Start) {
				aStart = p.Start
			}
			if aEnd.IsZero() || aEnd.After(p.End) {
				aEnd = p.End
			}
			if !aEnd.After(aStart) {
				next = append(next, p)
				continue
			}
			if aStart.After(p.Start) {
				next = append(next, Window{Start: p.Start, End: aStart})
			}
			if p.End.After(aEnd) {
				next = append(next, Window{Start: aEnd, End: p.End})
			}
		}
		parts = next
	}
	return parts
}
