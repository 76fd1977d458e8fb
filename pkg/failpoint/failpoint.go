// Package failpoint kills or stops the process at named points of the
// commit paths in pkg/store and pkg/stream, so that crash tests can put a
// kill -9 or a power cut exactly before or after a commit's fsync, where a
// kill or a cut at a random moment rarely lands.
//
// A point costs one atomic load while it is not armed. Points are armed in
// a child process by the environment variable CAIRN_FAILPOINTS (Env), which
// store.Open reads once, e.g.
//
//	CAIRN_FAILPOINTS='store/before-commit=kill@3'
//	CAIRN_FAILPOINTS='stream/cursor-after-commit=stop@2;store/after-commit=kill@10'
//
// "kill@3" sends SIGKILL to the process itself on the third hit of the
// point; "stop" sends SIGSTOP instead, so that a test that sees the process
// stopped can cut the power (reliability/internal/lazyfs) and then kill it.
// Each armed point fires once. The suite's tests are in
// reliability/failpoint_test.go; docs/reliability.md lists the points.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Env is the environment variable that arms failpoints.
const Env = "CAIRN_FAILPOINTS"

// Point is one named place in the code where the process can be killed or
// stopped.
type Point struct {
	name string
	arm  atomic.Pointer[term]
}

// The points. A commit's fsync happens inside bbolt's Tx.Commit, between
// each "before" and its "after".
var (
	// StoreBeforeCommit is hit in every write transaction of pkg/store
	// (DB.Commit and its group commit, CommitLinger, DB.Update) once the
	// transaction's changes are made and before bbolt commits them: the
	// changes are in memory only.
	StoreBeforeCommit = &Point{name: "store/before-commit"}
	// StoreAfterCommit is hit once bbolt's commit (and its fsync) has
	// returned, before the callers are told: durable but not acknowledged.
	StoreAfterCommit = &Point{name: "store/after-commit"}
	// AppendBeforeCommit is hit by every append to a stream.Log, once the
	// records are written into the transaction, before it commits.
	AppendBeforeCommit = &Point{name: "stream/append-before-commit"}
	// AppendAfterCommit is hit once a transaction that appended to a log
	// has committed and been fsynced, before the log's subscribers are
	// woken and before the writer is acknowledged.
	AppendAfterCommit = &Point{name: "stream/append-after-commit"}
	// CursorBeforeCommit is hit by a stream.Consumer once a batch is
	// applied and its cursor written into the transaction, before it
	// commits.
	CursorBeforeCommit = &Point{name: "stream/cursor-before-commit"}
	// CursorAfterCommit is hit once a consumer's transaction (state and
	// cursor) is durable, before the consumer moves its cursor in memory
	// (and in cairn_consumer_cursor).
	CursorAfterCommit = &Point{name: "stream/cursor-after-commit"}
)

// all lists every point, in the order they are documented.
var all = []*Point{StoreBeforeCommit, StoreAfterCommit, AppendBeforeCommit, AppendAfterCommit, CursorBeforeCommit, CursorAfterCommit}

// Name returns the point's name, as CAIRN_FAILPOINTS spells it.
func (p *Point) Name() string { return p.name }

// Names lists the name of every point.
func Names() []string {
	out := make([]string, len(all))
	for i, p := range all {
		out[i] = p.name
	}
	return out
}

// Action is what an armed point does when it fires.
type Action int

const (
	// Kill sends SIGKILL to the process: a kill -9 at exactly that point.
	Kill Action = iota + 1
	// Stop sends SIGSTOP to the process; the test that sees it stopped
	// decides what happens next (cut the power, kill it, or SIGCONT).
	Stop
)

func (a Action) String() string {
	switch a {
	case Kill:
		return "kill"
	case Stop:
		return "stop"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Setting arms one point: it does Action on its At-th hit (1 is the first).
type Setting struct {
	Point  *Point
	Action Action
	At     uint64
}

func (s Setting) String() string {
	return s.Point.name + "=" + s.Action.String() + "@" + strconv.FormatUint(s.At, 10)
}

type term struct {
	Setting
	hits atomic.Uint64
}

// Hit counts a pass through the point and fires it on the armed hit. Not
// armed, it is one atomic load.
func (p *Point) Hit() {
	if t := p.arm.Load(); t != nil {
		p.hit(t)
	}
}

// hit is kept out of line so that Hit, the disarmed path, inlines.
//
//go:noinline
func (p *Point) hit(t *term) {
	if t.hits.Add(1) == t.At {
		fire(t.Setting)
	}
}

// fire carries out an action; tests of this package replace it.
var fire = func(s Setting) {
	// The line tells the test (and whoever reads the process's log) that
	// the process went down at a failpoint, not by a bug.
	_, _ = fmt.Fprintf(os.Stderr, "failpoint %s fired: %s at hit %d\n", s.Point.name, s.Action, s.At)
	switch s.Action {
	case Kill:
		if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
			_, _ = fmt.Fprintf(os.Stderr, "failpoint %s: SIGKILL: %v\n", s.Point.name, err)
			os.Exit(137)
		}
		// The signal is delivered to the process asynchronously; this
		// goroutine must not go on to the commit meanwhile.
		for {
			time.Sleep(time.Hour)
		}
	case Stop:
		if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
			_, _ = fmt.Fprintf(os.Stderr, "failpoint %s: SIGSTOP: %v\n", s.Point.name, err)
		}
	}
}

// Parse reads a CAIRN_FAILPOINTS value: settings "point=action[@hit]"
// separated by ";", where action is kill or stop and hit (default 1) is
// the hit that fires. Blanks around the parts are ignored; an empty value
// arms nothing. Errors name the part at fault and never panic.
func Parse(spec string) ([]Setting, error) {
	var out []Setting
	seen := map[*Point]bool{}
	for i, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		s, err := parseSetting(part)
		if err != nil {
			return nil, fmt.Errorf("setting %d %q: %w", i+1, part, err)
		}
		if seen[s.Point] {
			return nil, fmt.Errorf("setting %d %q: point %s is armed twice", i+1, part, s.Point.name)
		}
		seen[s.Point] = true
		out = append(out, s)
	}
	return out, nil
}

func parseSetting(part string) (Setting, error) {
	name, rest, ok := strings.Cut(part, "=")
	if !ok {
		return Setting{}, errors.New(`want point=action[@hit], e.g. "store/before-commit=kill@3"`)
	}
	name = strings.TrimSpace(name)
	var s Setting
	for _, p := range all {
		if p.name == name {
			s.Point = p
		}
	}
	if s.Point == nil {
		return Setting{}, fmt.Errorf("unknown point %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	action, at, hasAt := strings.Cut(rest, "@")
	switch strings.TrimSpace(action) {
	case "kill":
		s.Action = Kill
	case "stop":
		s.Action = Stop
	default:
		hint := ""
		if strings.ContainsAny(action, ",=") {
			hint = "; settings are separated by \";\""
		}
		return Setting{}, fmt.Errorf("unknown action %q (known: kill, stop%s)", strings.TrimSpace(action), hint)
	}
	s.At = 1
	if hasAt {
		n, err := strconv.ParseUint(strings.TrimSpace(at), 10, 64)
		if err != nil || n == 0 {
			return Setting{}, fmt.Errorf("hit %q: want a whole number from 1", strings.TrimSpace(at))
		}
		s.At = n
	}
	return s, nil
}

// Enable arms the points of spec (Parse) with fresh hit counts and
// disarms every other point. On an error nothing changes.
func Enable(spec string) error {
	settings, err := Parse(spec)
	if err != nil {
		return err
	}
	Disable()
	for _, s := range settings {
		t := &term{Setting: s}
		s.Point.arm.Store(t)
	}
	return nil
}

// Disable disarms every point.
func Disable() {
	for _, p := range all {
		p.arm.Store(nil)
	}
}

var (
	envOnce sync.Once
	envErr  error
)

// FromEnv arms the points named by CAIRN_FAILPOINTS, once per process, and
// returns the same error on every call if the variable does not parse.
// store.Open calls it, so that every service that writes is covered
// without wiring; a bad value makes the service refuse to start instead of
// running with no failpoint, which would let a crash test pass vacuously.
func FromEnv() error {
	envOnce.Do(func() {
		spec := os.Getenv(Env)
		if strings.TrimSpace(spec) == "" {
			return // leaves alone what a test armed with Enable
		}
		if err := Enable(spec); err != nil {
			envErr = fmt.Errorf("%s: %w", Env, err)
		}
	})
	return envErr
}
