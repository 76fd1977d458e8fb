package hours

import (
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// ForOwner builds an owner's calendar from routing's directory entry: its
// time zone (resolved by location, which may cache), weekly working hours,
// holidays and out-of-office window. Routing runs SLA clocks on it and
// plays counts task due dates on it, so both read an owner's week the same
// way.
func ForOwner(o *routingv1.Owner, location func(name string) (*time.Location, error)) (*Calendar, error) {
	loc := time.UTC
	if name := o.GetTimeZone(); name != "" {
		var err error
		if loc, err = location(name); err != nil {
			return nil, err
		}
	}
	var days []Day
	for _, w := range o.GetWorkingHours() {
		days = append(days, Day{Weekday: time.Weekday(w.GetWeekday()), Start: w.GetStart(), End: w.GetEnd()})
	}
	var away []Window
	if w := o.GetOutOfOffice(); w != nil {
		var win Window
		if w.GetStart() != nil {
			win.Start = w.GetStart().AsTime()
		}
		if w.GetEnd() != nil {
			win.End = w.GetEnd().AsTime()
		}
		away = append(away, win)
	}
	return New(loc, days, o.GetHolidays(), away)
}
