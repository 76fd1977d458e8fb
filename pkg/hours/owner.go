package hours

import (
	"fmt"
	"sync"
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

// Zones caches time zones by IANA name: time.LoadLocation reads the zone
// file on every call, and an owner's calendar is built often. The zero
// value is ready; it is safe for concurrent use.
type Zones struct {
	mu    sync.RWMutex
	zones map[string]*time.Location
}

// Load returns the named zone, loading it once.
func (z *Zones) Load(name string) (*time.Location, error) {
	z.mu.RLock()
	loc, ok := z.zones[name]
	z.mu.RUnlock()
	if ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("load zone %q: %w", name, err)
	}
	z.mu.Lock()
	if z.zones == nil {
		z.zones = map[string]*time.Location{}
	}
	z.zones[name] = loc
	z.mu.Unlock()
	return loc, nil
}
