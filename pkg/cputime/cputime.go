// Package cputime reads the CPU time the process has used, so that
// benchmarks report the work done per operation independently of how busy
// the shared machine is (wall-clock rates are not comparable across runs on
// a machine other jobs use).
package cputime

import "time"

// Process returns the process's user plus system CPU time so far, or 0
// where the platform does not report it.
func Process() time.Duration { return process() }
