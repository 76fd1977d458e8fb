package server

import (
	"runtime/debug"
	"sync"
)

// backlogGCPercent is the garbage collector target (GOGC) while a backlog
// of timers fires in the pipeline. Firing allocates about 6 KB of
// short-lived garbage per timer (bbolt's cursors and node growth, decoded
// clocks, encoded records) against a live heap of two batches, so at the
// default of 100 the collector took about a third of the CPU of a 1M-timer
// restart on two cores; at 400 it runs a quarter as often, for a heap that
// peaks at five times the live one instead of twice (a memory limit,
// GOMEMLIMIT, still caps it). Restored as soon as the backlog is done.
const backlogGCPercent = 400

// gcRaise counts pipelines running; the first raises the GC target and the
// last restores it (prev), unless it was already higher or off.
var gcRaise struct {
	sync.Mutex
	n       int
	prev    int
	changed bool
}

// raiseGC raises the GC target to backlogGCPercent until the returned
// function is called.
func raiseGC() (restore func()) {
	gcRaise.Lock()
	defer gcRaise.Unlock()
	if gcRaise.n == 0 {
		gcRaise.prev = debug.SetGCPercent(backlogGCPercent)
		gcRaise.changed = true
		if gcRaise.prev < 0 || gcRaise.prev >= backlogGCPercent {
			debug.SetGCPercent(gcRaise.prev)
			gcRaise.changed = false
		}
	}
	gcRaise.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			gcRaise.Lock()
			defer gcRaise.Unlock()
			gcRaise.n--
			if gcRaise.n == 0 && gcRaise.changed {
				debug.SetGCPercent(gcRaise.prev)
			}
		})
	}
}
