package gc

import (
	"runtime/debug"
	"testing"
)

// current reads the GC target without changing it.
func current() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestRaise(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	type op struct {
		raise   int // > 0: Raise(raise); 0: restore the raise at index undo
		undo    int
		wantNow int
	}
	tests := []struct {
		name  string
		start int
		ops   []op
	}{
		{"raises and restores", 100, []op{{raise: 200, wantNow: 200}, {undo: 0, wantNow: 100}}},
		{"overlapping raises keep the highest", 100, []op{
			{raise: 200, wantNow: 200}, {raise: 400, wantNow: 400},
			{undo: 1, wantNow: 200}, {undo: 0, wantNow: 100}}},
		{"first restored first", 100, []op{
			{raise: 400, wantNow: 400}, {raise: 200, wantNow: 400},
			{undo: 0, wantNow: 200}, {undo: 1, wantNow: 100}}},
		{"a higher target is left alone", 800, []op{{raise: 400, wantNow: 800}, {undo: 0, wantNow: 800}}},
		{"collector off is left alone", -1, []op{{raise: 400, wantNow: -1}, {undo: 0, wantNow: -1}}},
		{"restoring twice changes nothing", 100, []op{
			{raise: 200, wantNow: 200}, {raise: 300, wantNow: 300},
			{undo: 0, wantNow: 300}, {undo: 0, wantNow: 300}, {undo: 1, wantNow: 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(tt.start)
			var restores []func()
			for i, o := range tt.ops {
				if o.raise > 0 {
					restores = append(restores, Raise(o.raise))
				} else {
					restores[o.undo]()
				}
				if got := current(); got != o.wantNow {
					t.Fatalf("op %d: GC target %d, want %d", i, got, o.wantNow)
				}
			}
		})
	}
}
