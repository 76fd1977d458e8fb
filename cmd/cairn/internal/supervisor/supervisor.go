// Package supervisor runs the suite's binaries as child processes: it starts
// them with their flags, prefixes their output with the service name, waits
// until each is ready, notices when one dies (and restarts it when told to),
// and stops them all with SIGTERM (then SIGKILL after a bound).
package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// Process describes one child.
type Process struct {
	// Name prefixes the child's output lines and names it in errors.
	Name string
	// Path is the binary.
	Path string
	// Args are the command-line arguments (without the program name).
	Args []string
	// Env is added to the supervisor's own environment.
	Env []string
	// GRPCAddr, when set, is polled with the gRPC health protocol until it
	// answers SERVING.
	GRPCAddr string
	// ReadyURL, when set, is polled until it answers 200.
	ReadyURL string
	// ReasonURL, when set, says why a GRPCAddr child is not SERVING (a
	// service's /readyz on its metrics address): its answer goes into the
	// readiness error, so that the supervisor names the missing upstream.
	ReasonURL string
}

// Exit reports a child that ended.
type Exit struct {
	Name string
	Err  error // nil for exit status 0
}

// Group is a set of running children.
type Group struct {
	clock  clock.Clock
	out    *lockedWriter
	exits  chan Exit
	mu     sync.Mutex
	procs  []*child
	closed bool
}

type child struct {
	p    Process
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *prefixWriter
}

// NewGroup returns an empty group whose children write to out. clk paces
// readiness polling and the stop timeout.
func NewGroup(out io.Writer, clk clock.Clock) *Group {
	return &Group{clock: clk, out: &lockedWriter{w: out}, exits: make(chan Exit, 16)}
}

// Exits delivers every child exit, expected or not, in the order they happen.
func (g *Group) Exits() <-chan Exit { return g.exits }

// Start launches p. The child gets its own process group so that a Ctrl-C
// in the terminal reaches only the supervisor, which then stops the children
// in order; on Linux the child is also killed if the supervisor dies.
func (g *Group) Start(p Process) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("start " + p.Name + ": group is stopping")
	}
	if _, err := os.Stat(p.Path); err != nil {
		return fmt.Errorf("start %s: %w (build it with `make build`)", p.Name, err)
	}
	c, err := g.spawnLocked(p)
	if err != nil {
		return err
	}
	g.procs = append(g.procs, c)
	return nil
}

// Restart starts again the child called name, which must have exited, with
// the same command line. It keeps the child's place in the start order, so
// Stop still stops downstream services first.
func (g *Group) Restart(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("restart " + name + ": group is stopping")
	}
	for i, c := range g.procs {
		if c.p.Name != name {
			continue
		}
		select {
		case <-c.done:
		default:
			return fmt.Errorf("restart %s: it is still running", name)
		}
		nc, err := g.spawnLocked(c.p)
		if err != nil {
			return err
		}
		g.procs[i] = nc
		return nil
	}
	return fmt.Errorf("restart %s: no such child", name)
}

// spawnLocked starts p's process and reports its exit on Exits; g.mu is
// held.
func (g *Group) spawnLocked(p Process) (*child, error) {
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	pw := &prefixWriter{prefix: []byte(fmt.Sprintf("%-9s | ", p.Name)), out: g.out}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	c := &child{p: p, cmd: cmd, done: make(chan struct{}), out: pw}
	go func() {
		c.err = cmd.Wait()
		pw.flush()
		close(c.done)
		select {
		case g.exits <- Exit{Name: p.Name, Err: c.err}:
		default: // Nobody is listening any more: we are stopping.
		}
	}()
	return c, nil
}

// WaitReady polls every child's readiness check until all pass, ctx ends, or
// a child exits (reported as an error naming it).
func (g *Group) WaitReady(ctx context.Context, interval time.Duration) error {
	g.mu.Lock()
	procs := append([]*child(nil), g.procs...)
	g.mu.Unlock()
	for _, c := range procs {
		if err := c.waitReady(ctx, g.clock, interval); err != nil {
			return err
		}
	}
	return nil
}

// reason fetches a not-ready child's explanation from url ("" when there is
// none or it cannot be had).
func reason(ctx context.Context, url string) string {
	if url == "" {
		return ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.TrimSpace(string(b))
}

func (c *child) waitReady(ctx context.Context, clk clock.Clock, interval time.Duration) error {
	check := func(context.Context) error { return nil }
	switch {
	case c.p.GRPCAddr != "":
		conn, err := grpc.NewClient(c.p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("check %s health: %w", c.p.Name, err)
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		check = func(ctx context.Context) error {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				if why := reason(ctx, c.p.ReasonURL); why != "" {
					return fmt.Errorf("status %s: %s", resp.GetStatus(), why)
				}
				return fmt.Errorf("status %s", resp.GetStatus())
			}
			return nil
		}
	case c.p.ReadyURL != "":
		check = func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.p.ReadyURL, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", c.p.ReadyURL, resp.Status)
			}
			return nil
		}
	}
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited before it was ready: %s", c.p.Name, exitText(c.err))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v)", c.p.Name, ctx.Err(), last)
		case <-clk.After(interval):
		}
	}
}

// Stop stops the children one at a time in reverse start order, so that
// downstream services (started last) leave before the upstreams they read
// from and do not spend their shutdown reconnecting. Each child gets SIGTERM
// and up to timeout to exit before it is killed; one that hangs does not cut
// short the others' graceful stop. Stop returns the children that had to be
// killed or exited with an error.
func (g *Group) Stop(timeout time.Duration) error {
	g.mu.Lock()
	g.closed = true
	procs := append([]*child(nil), g.procs...)
	g.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(g.clock, timeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *child) stop(clk clock.Clock, timeout time.Duration) error {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-clk.After(timeout):
			_ = c.cmd.Process.Kill()
			<-c.done
			return fmt.Errorf("%s: killed after not stopping within %s", c.p.Name, timeout)
		}
	}
	if c.err != nil && !terminatedBySignal(c.err, syscall.SIGTERM) {
		return fmt.Errorf("%s: %s", c.p.Name, exitText(c.err))
	}
	return nil
}

func terminatedBySignal(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lockedWriter serialises whole lines from several children.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter prefixes every complete line; a trailing partial line waits
// for its newline (or for flush when the child exits).
type prefixWriter struct {
	mu     sync.Mutex
	prefix []byte
	out    io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := make([]byte, 0, len(p.prefix)+i+1)
		line = append(append(line, p.prefix...), p.buf[:i+1]...)
		if _, err := p.out.Write(line); err != nil {
			// A broken terminal must not break the child's pipe: drop the line.
			return len(b), nil
		}
		p.buf = p.buf[i+1:]
	}
	// Bound memory if a child writes a huge line without newlines.
	if len(p.buf) > 64<<10 {
		_, _ = p.out.Write(append(append(append([]byte(nil), p.prefix...), p.buf...), '\n'))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		_, _ = p.out.Write(append(append(append([]byte(nil), p.prefix...), p.buf...), '\n'))
		p.buf = nil
	}
}
