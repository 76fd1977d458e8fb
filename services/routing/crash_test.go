package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
	rstore "github.com/cairn-dev/cairn/services/routing/internal/store"
)

// testTags builds the binary with the test-only hooks
// (internal/app/hooks_cairntest.go): CAIRN_FAKE_NOW freezes its clock and
// CAIRN_TEST_KILL_AFTER_TIMERS makes it kill itself.
const testTags = "cairntest"

// proc is a running cairn-routing subprocess.
type proc struct {
	cmd  *exec.Cmd
	addr string
}

func start(t *testing.T, bin, dataDir, now string, batch int, env ...string) *proc {
	t.Helper()
	addr := streamtest.FreeAddr(t)
	cmd := exec.Command(bin, "-grpc-addr", addr, "-metrics-addr", "", "-data", dataDir, "-partitions", "4",
		"-ingestion-addr", "", "-stages-addr", "", "-health-addr", "")
	cmd.Env = append(os.Environ(), "CAIRN_FAKE_NOW="+now, fmt.Sprintf("CAIRN_TIMER_BATCH=%d", batch), "CAIRN_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, addr: addr}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL: no shutdown path runs.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// TestCrashBetweenDueAndFiring qualifies leads, kills the process, restarts
// it with a clock past every due time, kills it again while it fires the
// overdue timers, restarts once more, and checks through Subscribe and
// ListAssignments that every breach was published exactly once.
func TestCrashBetweenDueAndFiring(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn-routing")
	build := exec.Command("go", "build", "-tags", testTags, "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	data := filepath.Join(dir, "data")
	keys, err := auth.LoadKeyring(filepath.Join(data, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := keys.Create("ws", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	service, err := keys.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}

	const leads = 300
	// Phase 1: Monday 09:00 UTC; each MQL has a 1 business hour SLA.
	p := start(t, bin, data, "2026-11-16T09:00:00Z", 2000)
	conn := streamtest.Dial(t, p.addr)
	streamtest.WaitServing(t, conn)
	c := routingv1.NewRoutingServiceClient(conn)
	ctx := streamtest.Bearer(admin)
	for _, o := range []string{"alice", "bob"} {
		if _, err := c.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{OwnerId: o, Team: routingv1.Team_TEAM_SDR}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{PoolId: "sdr", OwnerIds: []string{"alice", "bob"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: &routingv1.Config{
		FallbackPoolId: "sdr",
		SlaPolicies:    []*routingv1.SlaPolicy{{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)}},
	}}); err != nil {
		t.Fatal(err)
	}
	for i := range leads {
		if _, err := c.Qualify(ctx, &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: fmt.Sprintf("l%d@acme.com", i), AccountId: fmt.Sprintf("acct%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	p.kill()

	// Phase 2: Tuesday noon, every timer overdue. Fire 7 per transaction;
	// the test-only hook makes the process SIGKILL itself once 100 have
	// fired, so it dies with due timers not yet fired.
	p = start(t, bin, data, "2026-11-17T12:00:00Z", 7, "CAIRN_TEST_KILL_AFTER_TIMERS=100")
	err = p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("phase 2 ended with %v, want SIGKILL", err)
	}
	pending := pendingTimers(t, filepath.Join(data, "routing.db"))
	t.Logf("killed with %d of %d SLA clocks still pending (the rest fired their breach)", pending, leads)
	if pending == 0 {
		t.Fatalf("%d timers pending after the kill: everything fired before it, the test proved nothing", pending)
	}

	// Phase 3: restart and let it finish.
	p = start(t, bin, data, "2026-11-17T12:00:00Z", 5)
	conn = streamtest.Dial(t, p.addr)
	streamtest.WaitServing(t, conn)
	c = routingv1.NewRoutingServiceClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := c.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{State: routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED, Page: &commonv1.PageRequest{PageSize: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetAssignments()) == leads {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d assignments breached after 60s", len(r.GetAssignments()), leads)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Read the whole routing log and count SLA thresholds per assignment: an
	// event's own kind, and the thresholds it passed when it fired late.
	counts := map[string]map[string]int{}
	sctx, cancel := context.WithCancel(streamtest.Bearer(service))
	defer cancel()
	for part := range uint32(4) {
		st, err := c.Subscribe(sctx, &routingv1.SubscribeRequest{Partition: part, FromOffset: 1})
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := st.Recv()
			if err != nil {
				t.Fatalf("subscribe %d: %v", part, err)
			}
			last := uint64(0)
			for _, r := range resp.GetRecords() {
				last = r.GetOffset()
				if e := r.GetSlaEvent(); e != nil {
					if counts[e.GetAssignmentId()] == nil {
						counts[e.GetAssignmentId()] = map[string]int{}
					}
					counts[e.GetAssignmentId()][e.GetKind()]++
					for _, p := range e.GetPassed() {
						counts[e.GetAssignmentId()][p.GetKind()]++
					}
				}
			}
			if last >= resp.GetHeadOffset() {
				break
			}
		}
	}
	if len(counts) != leads {
		t.Fatalf("SLA events for %d assignments, want %d", len(counts), leads)
	}
	for id, k := range counts {
		if k["warning_50"] != 1 || k["warning_80"] != 1 || k["breach"] != 1 || len(k) != 3 {
			t.Fatalf("%s: thresholds %v, want exactly one warning_50, warning_80 and breach", id, k)
		}
	}
	if !strings.HasPrefix(p.addr, "127.0.0.1:") {
		t.Fatalf("listening on %s", p.addr)
	}
}

// pendingTimers opens the (unlocked, killed) file and counts pending timers.
func pendingTimers(t *testing.T, path string) int {
	t.Helper()
	db, err := rstore.OpenDB(path, pstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	n := 0
	_ = db.View(func(tx *pstore.Tx) error { n = rstore.PendingTimers(tx); return nil })
	return n
}

// TestGracefulStop checks that SIGTERM stops the process cleanly (exit 0)
// even while a Subscribe stream is open.
func TestGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn-routing")
	build := exec.Command("go", "build", "-tags", testTags, "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	keys, err := auth.LoadKeyring(filepath.Join(dir, "data", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	service, err := keys.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, bin, filepath.Join(dir, "data"), "2026-11-16T09:00:00Z", 100)
	conn := streamtest.Dial(t, p.addr)
	streamtest.WaitServing(t, conn)
	ctx, cancel := context.WithCancel(streamtest.Bearer(service))
	defer cancel()
	st, err := routingv1.NewRoutingServiceClient(conn).Subscribe(ctx, &routingv1.SubscribeRequest{Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after SIGTERM")
	}
}
