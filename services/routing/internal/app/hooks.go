package app

import "github.com/cairn-dev/cairn/pkg/clock"

// hooks are what the test-only settings of the environment ask of Run: a
// frozen clock, and a function called after each committed batch of fired
// timers with the total fired (Service.AfterFire).
type hooks struct {
	// clock, when set, replaces the wall clock.
	clock clock.Clock
	// afterFire, when set, becomes Service.AfterFire.
	afterFire func(total int)
	// notes say which hooks are on, for Run to log as warnings.
	notes []string
}

// testHooks reads the test-only settings from the environment. Only
// binaries built with -tags cairntest have it (hooks_cairntest.go): in a
// production build it is nil, and no variable can freeze the clock or make
// the process kill itself.
var testHooks func(getenv func(string) string) (*hooks, error)
