//go:build !cairntest

package app

import "testing"

// TestNoTestHooksInProduction checks that a build without the cairntest
// tag honours none of the test-only variables.
func TestNoTestHooksInProduction(t *testing.T) {
	if testHooks != nil {
		t.Fatal("test hooks compiled into a production build")
	}
	env := map[string]string{"CAIRN_FAKE_NOW": "2026-11-16T09:00:00Z", "CAIRN_TEST_KILL_AFTER_TIMERS": "1"}
	cfg, err := Parse(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.hooks != nil {
		t.Fatalf("hooks %+v from the environment", cfg.hooks)
	}
}
