// Package gc raises the garbage collector's target for the length of a bulk
// job and puts it back afterwards.
//
// A bulk job (a full health rescore, a backlog of SLA timers) allocates a
// lot of short-lived garbage against a small live heap, so at Go's default
// target the collector takes a large share of the CPU. A higher target
// trades peak memory for that CPU, only while the job runs.
package gc

import (
	"runtime/debug"
	"slices"
	"sync"
)

var state struct {
	sync.Mutex
	// active holds the targets of the raises in progress.
	active []int
	// prev is the target before the first of them.
	prev int
}

// Raise sets the GC target (GOGC) to at least percent until restore is
// called. A target that is already higher, or a collector switched off
// (GOGC=off), is left alone, and a memory limit (GOMEMLIMIT) still caps the
// heap. Raises may overlap: the target is the highest in progress, and the
// original returns when the last one is restored. Calling restore more than
// once has no further effect.
func Raise(percent int) (restore func()) {
	state.Lock()
	defer state.Unlock()
	if len(state.active) == 0 {
		state.prev = debug.SetGCPercent(percent)
	}
	state.active = append(state.active, percent)
	apply()
	var once sync.Once
	return func() {
		once.Do(func() {
			state.Lock()
			defer state.Unlock()
			if i := slices.Index(state.active, percent); i >= 0 {
				state.active = slices.Delete(state.active, i, i+1)
			}
			if len(state.active) == 0 {
				debug.SetGCPercent(state.prev)
				return
			}
			apply()
		})
	}
}

// apply sets the target for the raises in progress; state is locked.
func apply() {
	target := slices.Max(state.active)
	if state.prev < 0 || state.prev >= target {
		target = state.prev
	}
	debug.SetGCPercent(target)
}
