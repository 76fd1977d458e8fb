package hours

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

func TestForOwner(t *testing.T) {
	load := func(name string) (*time.Location, error) { return time.LoadLocation(name) }
	// Friday 16:00 in Berlin; working 09-17 Mon-Fri: 2 business hours
	// later is Monday 10:00.
	fri := time.Date(2031, 1, 3, 16, 0, 0, 0, mustLoad(t, "Europe/Berlin"))
	o := &routingv1.Owner{OwnerId: "lena", TimeZone: "Europe/Berlin"}
	c, err := ForOwner(o, load)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.AddBusiness(fri, 2*time.Hour), time.Date(2031, 1, 6, 10, 0, 0, 0, fri.Location()); !got.Equal(want) {
		t.Errorf("AddBusiness = %v, want %v", got, want)
	}
	// Out of office all of Monday: Tuesday 10:00.
	o.OutOfOffice = &commonv1.TimeWindow{Start: timestamppb.New(time.Date(2031, 1, 6, 0, 0, 0, 0, fri.Location())), End: timestamppb.New(time.Date(2031, 1, 7, 0, 0, 0, 0, fri.Location()))}
	if c, err = ForOwner(o, load); err != nil {
		t.Fatal(err)
	}
	if got, want := c.AddBusiness(fri, 2*time.Hour), time.Date(2031, 1, 7, 10, 0, 0, 0, fri.Location()); !got.Equal(want) {
		t.Errorf("with out of office: %v, want %v", got, want)
	}
	bad := errors.New("no zone")
	if _, err := ForOwner(&routingv1.Owner{TimeZone: "Mars/Base"}, func(string) (*time.Location, error) { return nil, bad }); !errors.Is(err, bad) {
		t.Errorf("unknown zone: %v", err)
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("zone %s: %v", name, err)
	}
	return loc
}

func TestZones(t *testing.T) {
	var z Zones
	a, err := z.Load("Europe/Berlin")
	if err != nil {
		t.Skip(err)
	}
	b, err := z.Load("Europe/Berlin")
	if err != nil || a != b {
		t.Errorf("second Load = %p, %v; want the cached %p", b, err, a)
	}
	if _, err := z.Load("Mars/Base"); err == nil || !strings.Contains(err.Error(), `load zone "Mars/Base"`) {
		t.Errorf("unknown zone: %v", err)
	}
}
