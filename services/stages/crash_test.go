package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

const crashParts = 4

// crashHistory is a deterministic history in the future, so that no timer
// falls due while the test runs and both runs see the same evaluations.
func crashHistory(accounts, days int) []*ingestionv1.Event {
	script := []string{"content_viewed", "demo_requested", "poc_started", "contract_signed", "setup_completed", "activated", "report_created", "dashboard_shared", "export_run"}
	start := time.Date(2031, 1, 6, 8, 0, 0, 0, time.UTC)
	var out []*ingestionv1.Event
	for d := 0; d < days; d++ {
		for a := 0; a < accounts; a++ {
			step := min(d/(1+a%4), len(script)-1)
			out = append(out, &ingestionv1.Event{
				Workspace: "w", AccountId: fmt.Sprintf("acct-%03d", a), UserId: fmt.Sprintf("u%d", d%3),
				Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: script[step], Source: "product",
				MessageId: fmt.Sprintf("m-%d-%d", d, a), Timestamp: timestamppb.New(start.Add(time.Duration(d) * 24 * time.Hour)),
			})
		}
	}
	return out
}

type proc struct {
	cmd     *exec.Cmd
	grpc    string
	metrics string
	log     string
}

func startStages(t *testing.T, bin, dir, ingestion, svcKey string) *proc {
	t.Helper()
	p := &proc{grpc: streamtest.FreeAddr(t), metrics: streamtest.FreeAddr(t)}
	p.cmd = exec.Command(bin, "-data", dir, "-grpc-addr", p.grpc, "-metrics-addr", p.metrics,
		"-ingestion-addr", ingestion, "-partitions", strconv.Itoa(crashParts))
	p.cmd.Env = append(os.Environ(), "CAIRN_SERVICE_KEY="+svcKey)
	p.log = filepath.Join(dir, "stages.log")
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// applied sums the consumer cursors exported on /metrics; -1 while the
// process is not answering yet.
func (p *proc) applied() int64 {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "cairn_consumer_cursor{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += int64(v)
		}
	}
	return sum
}

// waitApplied polls the child's metrics until it applied at least n records:
// it waits for another process to make progress, not for a deadline.
func (p *proc) waitApplied(t *testing.T, n int64) {
	t.Helper()
	limit := time.Now().Add(20 * time.Second)
	for p.applied() < n {
		if time.Now().After(limit) {
			out, _ := os.ReadFile(p.log)
			var m []byte
			if resp, err := http.Get("http://" + p.metrics + "/metrics"); err == nil {
				m, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			ps, _ := exec.Command("ps", "-eo", "pid,ppid,args").Output()
			t.Fatalf("stages (pid %d, grpc %s, metrics %s) applied %d of %d records; log:\n%.3000s\nmetrics:\n%s\nps:\n%s", p.cmd.Process.Pid, p.grpc, p.metrics, p.applied(), n, out, grepLines(string(m), "cairn_consumer"), grepLines(string(ps), "cairn-stages"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshot reads every account's journey and the whole stages log over the API.
func snapshot(t *testing.T, addr, readKey, svcKey string, accounts int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lines []string
	rc, err := server.Dial(addr, readKey)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c := stagesv1.NewStagesServiceClient(rc)
	for a := 0; a < accounts; a++ {
		resp, err := c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: fmt.Sprintf("acct-%03d", a)})
		if err != nil {
			t.Fatal(err)
		}
		j := resp.GetJourney()
		// Evaluated at the wall clock's now, which differs between runs.
		j.TimeInStage, j.ExitCriteria, j.DropoffCriteria, j.AsOf = nil, nil, nil, nil
		b, _ := protojson.Marshal(j)
		lines = append(lines, string(b))
	}
	sc, err := server.Dial(addr, svcKey)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s := stagesv1.NewStagesServiceClient(sc)
	for p := uint32(0); p < crashParts; p++ {
		sub, err := s.Subscribe(ctx, &stagesv1.SubscribeRequest{Partition: p})
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := sub.Recv()
			if err != nil {
				t.Fatal(err)
			}
			last := uint64(0)
			for _, r := range resp.GetRecords() {
				b, _ := protojson.Marshal(r)
				lines = append(lines, string(b))
				last = r.GetOffset()
			}
			if last >= resp.GetHeadOffset() {
				break
			}
		}
	}
	return strings.Join(lines, "\n")
}

// TestCrashMidStreamEqualsCleanRun runs the real binary twice over the same
// ingestion log: once cleanly, once killed with SIGKILL mid-stream and
// restarted. Journeys and the published stages log must be identical.
func TestCrashMidStreamEqualsCleanRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "cairn-stages")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const accounts = 150
	evs := crashHistory(accounts, 50)
	// One marker account per partition, logged last: once every marker is
	// visible, every partition has been applied to the end.
	var markers []string
	for i := 0; len(markers) < crashParts; i++ {
		m := fmt.Sprintf("marker-%d", i)
		if int(stream.Partition("w", m, crashParts)) == len(markers) {
			markers = append(markers, m)
			evs = append(evs, &ingestionv1.Event{Workspace: "w", AccountId: m, UserId: "u", Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
				Event: "content_viewed", MessageId: m, Timestamp: timestamppb.New(time.Date(2031, 12, 1, 0, 0, 0, 0, time.UTC))})
		}
	}
	ingLog, err := stream.OpenLog(storetest.Open(t), "ingestion", stream.LogOptions{Partitions: crashParts})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		data, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ingLog.Append(context.Background(), stream.Partition("w", e.GetAccountId(), crashParts), data); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	ingestionv1.RegisterIngestionServiceServer(g, &streamtest.Ingestion{Log: ingLog})
	served := make(chan struct{})
	go func() { _ = g.Serve(lis); close(served) }()
	defer func() { g.Stop(); <-served }()

	run := func(crash bool) string {
		dir := t.TempDir()
		keys, err := auth.LoadKeyring(filepath.Join(dir, "keys.json"))
		if err != nil {
			t.Fatal(err)
		}
		readKey, err := keys.Create("w", auth.RoleRead)
		if err != nil {
			t.Fatal(err)
		}
		svcKey, err := keys.Create("", auth.RoleService)
		if err != nil {
			t.Fatal(err)
		}
		p := startStages(t, bin, dir, lis.Addr().String(), svcKey)
		if crash {
			p.waitApplied(t, int64(len(evs)/2))
			seen := p.applied()
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			t.Logf("SIGKILL after at least %d of %d records applied", seen, len(evs))
			_ = p.cmd.Wait()
			p = startStages(t, bin, dir, lis.Addr().String(), svcKey)
		}
		waitMarkers(t, p, readKey, markers)
		snap := snapshot(t, p.grpc, readKey, svcKey, accounts)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("stages exit after SIGTERM: %v", err)
		}
		return snap
	}
	want := run(false)
	got := run(true)
	if got != want {
		t.Fatalf("state after SIGKILL and restart differs from a clean run (%d vs %d bytes)", len(got), len(want))
	}
	if !strings.Contains(want, `"toStage":"adoption"`) {
		t.Fatalf("history did not reach adoption:\n%.1500s", want)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitMarkers polls until every marker account is placed: it waits for the
// child process to make progress, not for a deadline.
func waitMarkers(t *testing.T, p *proc, readKey string, markers []string) {
	t.Helper()
	conn, err := server.Dial(p.grpc, readKey)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := stagesv1.NewStagesServiceClient(conn)
	limit := time.Now().Add(60 * time.Second)
	for _, m := range markers {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: m})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(limit) {
				out, _ := os.ReadFile(p.log)
				t.Fatalf("marker %s never applied: %v\n%.3000s", m, err, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
