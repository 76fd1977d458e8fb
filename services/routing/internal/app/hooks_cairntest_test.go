//go:build cairntest

package app

import (
	"strings"
	"testing"
	"time"
)

func TestEnvHooks(t *testing.T) {
	cfg, err := Parse(nil, func(k string) string {
		return map[string]string{"CAIRN_FAKE_NOW": "2026-11-16T09:00:00Z", "CAIRN_TEST_KILL_AFTER_TIMERS": "0"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.hooks == nil || !cfg.hooks.clock.Now().Equal(time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)) || cfg.hooks.afterFire != nil {
		t.Fatalf("hooks %+v", cfg.hooks)
	}
	for name, v := range map[string]string{"CAIRN_FAKE_NOW": "monday", "CAIRN_TEST_KILL_AFTER_TIMERS": "some"} {
		if _, err := Parse(nil, func(k string) string { return map[string]string{name: v}[k] }); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: error %v, want one naming the variable", name, v, err)
		}
	}
}
