//go:build cairntest

package app

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// The test-only settings, read by binaries built with -tags cairntest (the
// crash and end-to-end tests build them so).
const (
	// fakeNowEnv is an RFC 3339 instant that freezes the service's clock,
	// so subprocess tests can make SLA timers due at will.
	fakeNowEnv = "CAIRN_FAKE_NOW"
	// killAfterEnv is fault injection: after this many SLA timers have
	// fired (committed), the process sends itself SIGKILL, so the crash
	// test can die between a timer's due time and its firing
	// deterministically.
	killAfterEnv = "CAIRN_TEST_KILL_AFTER_TIMERS"
)

func init() { testHooks = envHooks }

// envHooks reads CAIRN_FAKE_NOW and CAIRN_TEST_KILL_AFTER_TIMERS; nil when
// neither is set.
func envHooks(getenv func(string) string) (*hooks, error) {
	var h hooks
	if v := getenv(fakeNowEnv); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fakeNowEnv, err)
		}
		h.clock = fixedClock{now: t}
		h.notes = append(h.notes, "clock frozen by "+fakeNowEnv+" (test only) at "+v)
	}
	if v := getenv(killAfterEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", killAfterEnv, err)
		}
		if n > 0 {
			h.notes = append(h.notes, fmt.Sprintf("%s=%d: the process kills itself (test only)", killAfterEnv, n))
			h.afterFire = func(total int) {
				if total >= n {
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
	}
	if h.clock == nil && h.afterFire == nil {
		return nil, nil
	}
	return &h, nil
}

// fixedClock is the test-only frozen clock: Now never moves, so After only
// fires for non-positive durations and the timer loop relies on wake-ups.
type fixedClock struct{ now time.Time }

// Now returns the frozen instant.
func (c fixedClock) Now() time.Time { return c.now }

// After fires at once for d <= 0 and never otherwise.
func (c fixedClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	}
	return ch
}
