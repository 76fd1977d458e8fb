package hours

import (
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return v
}

func allDay() []Day {
	var days []Day
	for d := time.Sunday; d <= time.Saturday; d++ {
		days = append(days, Day{Weekday: d, Start: "00:00", End: "24:00"})
	}
	return days
}

type calSpec struct {
	zone     string
	days     []Day
	holidays []string
	away     [][2]string
}

func (s calSpec) build(t *testing.T) *Calendar {
	t.Helper()
	var away []Window
	for _, a := range s.away {
		away = append(away, Window{Start: mustTime(t, a[0]), End: mustTime(t, a[1])})
	}
	c, err := New(mustLoc(t, s.zone), s.days, s.holidays, away)
	if err != nil {
		t.Fatalf("new calendar: %v", err)
	}
	return c
}

func TestAddBusiness(t *testing.T) {
	tests := []struct {
		name  string
		cal   calSpec
		start string
		d     time.Duration
		want  string
	}{
		{"same day", calSpec{zone: "America/New_York"}, "2026-11-16T09:00:00-05:00", 8 * time.Hour, "2026-11-16T17:00:00-05:00"},
		{"end of day rolls to next morning", calSpec{zone: "America/New_York"}, "2026-11-16T17:00:00-05:00", 8 * time.Hour, "2026-11-17T17:00:00-05:00"},
		{"over weekend", calSpec{zone: "America/New_York"}, "2026-11-20T16:00:00-05:00", 2 * time.Hour, "2026-11-23T10:00:00-05:00"},
		{"start on saturday", calSpec{zone: "America/New_York"}, "2026-11-21T10:00:00-05:00", time.Hour, "2026-11-23T10:00:00-05:00"},
		{"zero from evening is next opening", calSpec{zone: "America/New_York"}, "2026-11-16T18:00:00-05:00", 0, "2026-11-17T09:00:00-05:00"},
		{"start given in UTC", calSpec{zone: "Asia/Tokyo"}, "2026-11-16T07:30:00Z", time.Hour, "2026-11-17T09:30:00+09:00"},
		{"new york spring forward weekend", calSpec{zone: "America/New_York"}, "2026-03-06T16:00:00-05:00", 2 * time.Hour, "2026-03-09T10:00:00-04:00"},
		{"new york fall back weekend", calSpec{zone: "America/New_York"}, "2026-10-30T16:00:00-04:00", 2 * time.Hour, "2026-11-02T10:00:00-05:00"},
		{"berlin spring forward weekend", calSpec{zone: "Europe/Berlin"}, "2026-03-27T16:00:00+01:00", 2 * time.Hour, "2026-03-30T10:00:00+02:00"},
		{"berlin fall back weekend", calSpec{zone: "Europe/Berlin"}, "2026-10-23T16:00:00+02:00", 2 * time.Hour, "2026-10-26T10:00:00+01:00"},
		{"24h calendar across new york spring forward counts real time", calSpec{zone: "America/New_York", days: allDay()}, "2026-03-07T12:00:00-05:00", 24 * time.Hour, "2026-03-08T13:00:00-04:00"},
		{"24h calendar across berlin fall back counts real time", calSpec{zone: "Europe/Berlin", days: allDay()}, "2026-10-24T12:00:00+02:00", 24 * time.Hour, "2026-10-25T11:00:00+01:00"},
		{"holiday skipped", calSpec{zone: "America/New_York", holidays: []string{"2026-12-25"}}, "2026-12-24T16:00:00-05:00", 2 * time.Hour, "2026-12-28T10:00:00-05:00"},
		{"out of office skipped", calSpec{zone: "Europe/Berlin", away: [][2]string{{"2026-11-16T09:00:00+01:00", "2026-11-16T12:00:00+01:00"}}}, "2026-11-16T09:00:00+01:00", time.Hour, "2026-11-16T13:00:00+01:00"},
		{"week long absence", calSpec{zone: "Europe/Berlin", away: [][2]string{{"2026-11-16T00:00:00+01:00", "2026-11-23T00:00:00+01:00"}}}, "2026-11-16T10:00:00+01:00", time.Hour, "2026-11-23T10:00:00+01:00"},
		{"custom saturday shift", calSpec{zone: "UTC", days: []Day{{Weekday: time.Saturday, Start: "10:00", End: "14:00"}}}, "2026-11-16T10:00:00Z", 5 * time.Hour, "2026-11-28T11:00:00Z"},
		{"split day", calSpec{zone: "UTC", days: []Day{{Weekday: time.Monday, Start: "09:00", End: "12:00"}, {Weekday: time.Monday, Start: "13:00", End: "17:00"}}}, "2026-11-16T11:00:00Z", 2 * time.Hour, "2026-11-16T14:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cal.build(t)
			start := mustTime(t, tt.start)
			got := c.AddBusiness(start, tt.d)
			want := mustTime(t, tt.want)
			if !got.Equal(want) {
				t.Fatalf("AddBusiness(%s, %s) = %s, want %s", tt.start, tt.d, got.In(c.Location()), want)
			}
			// The two operations are inverses wherever start is in working time.
			if c.Working(start) {
				if used := c.BusinessBetween(start, got); used != tt.d {
					t.Fatalf("BusinessBetween(start, due) = %s, want %s", used, tt.d)
				}
			}
		})
	}
}

func TestBusinessBetween(t *testing.T) {
	tests := []struct {
		name string
		cal  calSpec
		a, b string
		want time.Duration
	}{
		{"reversed is zero", calSpec{zone: "UTC"}, "2026-11-17T10:00:00Z", "2026-11-16T10:00:00Z", 0},
		{"inside one day", calSpec{zone: "UTC"}, "2026-11-16T10:00:00Z", "2026-11-16T11:30:00Z", 90 * time.Minute},
		{"whole week", calSpec{zone: "Europe/Berlin"}, "2026-11-16T00:00:00+01:00", "2026-11-23T00:00:00+01:00", 40 * time.Hour},
		{"weekend only", calSpec{zone: "Europe/Berlin"}, "2026-11-21T00:00:00+01:00", "2026-11-23T00:00:00+01:00", 0},
		{"berlin week with fall back", calSpec{zone: "Europe/Berlin"}, "2026-10-19T00:00:00+02:00", "2026-10-26T12:00:00+01:00", 43 * time.Hour},
		{"new york week with spring forward", calSpec{zone: "America/New_York"}, "2026-03-06T00:00:00-05:00", "2026-03-10T00:00:00-04:00", 16 * time.Hour},
		{"24h new york spring forward day has 23h", calSpec{zone: "America/New_York", days: allDay()}, "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", 23 * time.Hour},
		{"24h berlin fall back day has 25h", calSpec{zone: "Europe/Berlin", days: allDay()}, "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25 * time.Hour},
		{"holiday counts nothing", calSpec{zone: "UTC", holidays: []string{"2026-11-16"}}, "2026-11-16T00:00:00Z", "2026-11-17T00:00:00Z", 0},
		{"out of office removed", calSpec{zone: "UTC", away: [][2]string{{"2026-11-16T10:00:00Z", "2026-11-16T11:00:00Z"}}}, "2026-11-16T09:00:00Z", "2026-11-16T17:00:00Z", 7 * time.Hour},
		{"zones differ from caller", calSpec{zone: "Asia/Tokyo"}, "2026-11-16T00:00:00Z", "2026-11-16T12:00:00Z", 8 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cal.build(t)
			if got := c.BusinessBetween(mustTime(t, tt.a), mustTime(t, tt.b)); got != tt.want {
				t.Fatalf("BusinessBetween = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWorkingAndAway(t *testing.T) {
	c := calSpec{zone: "America/New_York", holidays: []string{"2026-11-26"}, away: [][2]string{{"2026-11-17T00:00:00-05:00", "2026-11-18T00:00:00-05:00"}}}.build(t)
	tests := []struct {
		name    string
		at      string
		working bool
		away    bool
	}{
		{"monday morning", "2026-11-16T10:00:00-05:00", true, false},
		{"monday at close is outside", "2026-11-16T17:00:00-05:00", false, false},
		{"monday at open is inside", "2026-11-16T09:00:00-05:00", true, false},
		{"saturday", "2026-11-21T10:00:00-05:00", false, false},
		{"thanksgiving holiday", "2026-11-26T10:00:00-05:00", false, false},
		{"out of office", "2026-11-17T10:00:00-05:00", false, true},
		{"utc instant mapped to local", "2026-11-16T14:30:00Z", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := mustTime(t, tt.at)
			if got := c.Working(at); got != tt.working {
				t.Errorf("Working = %v, want %v", got, tt.working)
			}
			if got := c.Away(at); got != tt.away {
				t.Errorf("Away = %v, want %v", got, tt.away)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name     string
		days     []Day
		holidays []string
	}{
		{"bad start", []Day{{Weekday: time.Monday, Start: "9am", End: "17:00"}}, nil},
		{"end before start", []Day{{Weekday: time.Monday, Start: "17:00", End: "09:00"}}, nil},
		{"minutes out of range", []Day{{Weekday: time.Monday, Start: "09:75", End: "17:00"}}, nil},
		{"after midnight", []Day{{Weekday: time.Monday, Start: "09:00", End: "24:30"}}, nil},
		{"bad weekday", []Day{{Weekday: 7, Start: "09:00", End: "17:00"}}, nil},
		{"overlap", []Day{{Weekday: time.Monday, Start: "09:00", End: "13:00"}, {Weekday: time.Monday, Start: "12:00", End: "17:00"}}, nil},
		{"bad holiday", nil, []string{"25/12/2026"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(time.UTC, tt.days, tt.holidays, nil); err == nil {
				t.Fatal("New succeeded, want error")
			}
		})
	}
}

func TestAddBusinessInverse(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe"} {
		t.Run(zone, func(t *testing.T) {
			c := calSpec{zone: zone, holidays: []string{"2026-03-30", "2026-10-26"}}.build(t)
			start := mustTime(t, "2026-01-01T00:00:00Z")
			for i := range 2000 {
				s := start.Add(time.Duration(i) * 4 * time.Hour)
				d := time.Duration(i%37) * 17 * time.Minute
				due := c.AddBusiness(s, d)
				if got := c.BusinessBetween(s, due); got != d {
					t.Fatalf("start %s d %s: due %s, BusinessBetween = %s", s, d, due, got)
				}
			}
		})
	}
}

// FuzzNew feeds owner-supplied working hours and holidays (they arrive
// through UpsertOwner) to New and, when accepted, exercises the arithmetic.
func FuzzNew(f *testing.F) {
	f.Add(1, "09:00", "17:00", "2026-12-25", int64(3600))
	f.Add(0, "00:00", "24:00", "", int64(86400))
	f.Add(6, "23:59", "24:00", "2026-02-30", int64(1))
	f.Add(7, "9:00", "17:0", "x", int64(-5))
	f.Fuzz(func(t *testing.T, wd int, start, end, holiday string, secs int64) {
		c, err := New(time.UTC, []Day{{Weekday: time.Weekday(wd), Start: start, End: end}}, []string{holiday}, nil)
		if err != nil {
			return
		}
		from := time.Date(2026, 11, 16, 8, 0, 0, 0, time.UTC)
		d := time.Duration(secs%(86400*30)) * time.Second
		due := c.AddBusiness(from, d)
		if due.Before(from) {
			t.Fatalf("due %s before start %s", due, from)
		}
		if got := c.BusinessBetween(from, due); d > 0 && got != d && due != from.Add(d) {
			t.Fatalf("BusinessBetween(start, due) = %s, want %s", got, d)
		}
	})
}
