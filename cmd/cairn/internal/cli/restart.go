package cli

import (
	"fmt"
	"time"
)

// restartPolicy decides what `cairn run` does when a child dies after the
// suite is up: restart it after a delay that doubles with every restart in
// the window (from base, at most max), or give up and stop the suite when
// the child has been restarted limit times within window already, because a
// child that keeps dying will not be helped by more restarts.
type restartPolicy struct {
	base, max time.Duration
	limit     int
	window    time.Duration
}

// defaultRestartPolicy restarts after 0.5 s, 1 s, 2 s, ... up to 30 s, and
// gives up on a child that died a sixth time within a minute of its first
// restart there (a crash loop costs about 16 s before it is reported).
var defaultRestartPolicy = restartPolicy{base: 500 * time.Millisecond, max: 30 * time.Second, limit: 5, window: time.Minute}

// restarts is the restart history of every child of one suite.
type restarts struct {
	policy restartPolicy
	// times holds, per child, when it was restarted within the window.
	times map[string][]time.Time
	// total counts every restart of a child, for the messages.
	total map[string]int
}

func newRestarts(p restartPolicy) *restarts {
	return &restarts{policy: p, times: map[string][]time.Time{}, total: map[string]int{}}
}

// restartDecision is what to do about one child's exit.
type restartDecision struct {
	// giveUp is set when the child died too often: stop the suite.
	giveUp bool
	// delay is the wait before the restart; n counts the child's restarts,
	// this one included.
	delay time.Duration
	n     int
}

// onExit records that name died at now and decides whether and when to
// restart it.
func (r *restarts) onExit(name string, now time.Time) restartDecision {
	recent := r.times[name][:0]
	for _, t := range r.times[name] {
		if now.Sub(t) < r.policy.window {
			recent = append(recent, t)
		}
	}
	r.times[name] = recent
	if len(recent) >= r.policy.limit {
		return restartDecision{giveUp: true}
	}
	delay := r.policy.base
	for range len(recent) {
		if delay >= r.policy.max/2 {
			delay = r.policy.max
			break
		}
		delay *= 2
	}
	delay = min(delay, r.policy.max)
	r.times[name] = append(recent, now)
	r.total[name]++
	return restartDecision{delay: delay, n: r.total[name]}
}

// message is the supervisor's line about the decision for a child that
// exited with err.
func (d restartDecision) message(name string, err error, p restartPolicy) string {
	if d.giveUp {
		return fmt.Sprintf("%s exited (%s) after %d restarts within %s; stopping the suite", name, exitText(err), p.limit, p.window)
	}
	return fmt.Sprintf("%s exited (%s); restarting in %s (restart %d)", name, exitText(err), d.delay, d.n)
}
