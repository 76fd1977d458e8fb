package app

import (
	"fmt"
	"runtime/debug"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// TestBacklogRaisesGCPercent checks that the GC target is raised while a
// backlog (a full first batch) fires, put back afterwards, left alone when
// already higher or off, and not raised for a batch that is not full.
func TestBacklogRaisesGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	gcPercent := func() int {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p
	}
	tests := []struct {
		name          string
		before, batch int
		want          int
	}{
		{"backlog", 100, 7, backlogGCPercent},
		{"backlog, lower target", 50, 7, backlogGCPercent},
		{"backlog, higher target", 1000, 7, 1000},
		{"backlog, collector off", -1, 7, -1},
		{"no backlog", 100, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 9, 0))
			h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
			h.svc.batch = tt.batch
			for i := range 20 {
				h.qualify(fmt.Sprintf("l%d@acme.com", i))
			}
			debug.SetGCPercent(tt.before)
			during := map[int]bool{}
			h.svc.AfterFire = func(int) { during[gcPercent()] = true }
			h.clk.Set(ny(17, 9, 0))
			if n := h.fire(); n != 20 {
				t.Fatalf("fired %d, want 20", n)
			}
			if len(during) != 1 || !during[tt.want] {
				t.Errorf("GC target %v while firing, want %d", during, tt.want)
			}
			if after := debug.SetGCPercent(100); after != tt.before {
				t.Errorf("GC target %d after firing, want %d", after, tt.before)
			}
		})
	}
}
