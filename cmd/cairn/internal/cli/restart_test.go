package cli

import (
	"errors"
	"testing"
	"time"
)

func TestRestartsBackoffAndLimit(t *testing.T) {
	p := restartPolicy{base: 500 * time.Millisecond, max: 4 * time.Second, limit: 5, window: time.Minute}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	type exit struct {
		name   string
		at     time.Duration // after t0
		delay  time.Duration
		n      int
		giveUp bool
	}
	tests := []struct {
		name  string
		exits []exit
	}{
		{name: "doubles up to the cap", exits: []exit{
			{"health", 0, 500 * time.Millisecond, 1, false},
			{"health", time.Second, time.Second, 2, false},
			{"health", 3 * time.Second, 2 * time.Second, 3, false},
			{"health", 6 * time.Second, 4 * time.Second, 4, false},
			{"health", 11 * time.Second, 4 * time.Second, 5, false},
			{"health", 16 * time.Second, 0, 0, true},
		}},
		{name: "children back off independently", exits: []exit{
			{"health", 0, 500 * time.Millisecond, 1, false},
			{"routing", 0, 500 * time.Millisecond, 1, false},
			{"health", time.Second, time.Second, 2, false},
		}},
		{name: "restarts older than the window are forgotten", exits: []exit{
			{"stages", 0, 500 * time.Millisecond, 1, false},
			{"stages", 10 * time.Second, time.Second, 2, false},
			{"stages", 2 * time.Minute, 500 * time.Millisecond, 3, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRestarts(p)
			for i, e := range tt.exits {
				d := r.onExit(e.name, t0.Add(e.at))
				if d.giveUp != e.giveUp || d.delay != e.delay || d.n != e.n {
					t.Errorf("exit %d of %s: %+v, want delay %s, restart %d, give up %v", i, e.name, d, e.delay, e.n, e.giveUp)
				}
			}
		})
	}
}

func TestRestartMessage(t *testing.T) {
	p := defaultRestartPolicy
	killed := errors.New("signal: killed")
	tests := []struct {
		d    restartDecision
		err  error
		want string
	}{
		{restartDecision{delay: time.Second, n: 2}, killed, "health exited (signal: killed); restarting in 1s (restart 2)"},
		{restartDecision{delay: 500 * time.Millisecond, n: 1}, nil, "health exited (exit status 0); restarting in 500ms (restart 1)"},
		{restartDecision{giveUp: true}, killed, "health exited (signal: killed) after 5 restarts within 1m0s; stopping the suite"},
	}
	for _, tt := range tests {
		if got := tt.d.message("health", tt.err, p); got != tt.want {
			t.Errorf("message = %q, want %q", got, tt.want)
		}
	}
}
