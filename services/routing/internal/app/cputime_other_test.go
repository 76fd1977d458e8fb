//go:build !unix

package app

import "time"

// cpuTime is not measured on this platform; cpu-s/fire reports 0.
func cpuTime() time.Duration { return 0 }
