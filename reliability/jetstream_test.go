package reliability

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// JetStream leader-loss test knobs. The defaults are the short version that
// runs in `go test`; the long version, e.g.
//
//	CAIRN_JSLOSS_LOSSES=3 CAIRN_JSLOSS_ACCOUNTS=150 go test -count=1 -run TestJetStreamLeaderLoss -v .
const (
	envJSLosses   = "CAIRN_JSLOSS_LOSSES"   // leader losses in the run (default 1)
	envJSAccounts = "CAIRN_JSLOSS_ACCOUNTS" // workload accounts (default 50)
	envJSRate     = "CAIRN_JSLOSS_RATE"     // offered events/s (default 400)
)

// natsCluster is three `cairn nats-node` processes on loopback, each with
// its own store directory, as `cairn run --cluster` starts them.
type natsCluster struct {
	t    *testing.T
	bin  string
	dir  string
	base int

	// hosts[i] is the address node i binds (127.0.0.1 when empty);
	// netns[i], when set, is the network namespace it runs in.
	hosts [3]string
	netns [3]string

	mu    sync.Mutex
	procs [3]*exec.Cmd
	waits [3]chan error
}

// startNATS builds cmd/cairn and starts the three nodes, ready when each
// node's /healthz answers 200 (it has joined the JetStream cluster).
func startNATS(t *testing.T) *natsCluster {
	t.Helper()
	c := newNATS(t)
	c.startAll()
	return c
}

// newNATS builds cmd/cairn and returns a cluster not yet started, so that
// a test can place its nodes (hosts, netns) first.
func newNATS(t *testing.T) *natsCluster {
	t.Helper()
	bin := filepath.Join(binDir, "cairn")
	if _, err := os.Stat(bin); err != nil {
		out, err := exec.Command("go", "build", "-o", bin, "github.com/cairn-dev/cairn/cmd/cairn").CombinedOutput()
		if err != nil {
			t.Fatalf("go build cairn: %v\n%s", err, out)
		}
	}
	c := &natsCluster{t: t, bin: bin, dir: t.TempDir(), base: testport.Base(t, 9)}
	t.Cleanup(c.close)
	return c
}

// startAll starts the three nodes and waits until each is healthy.
func (c *natsCluster) startAll() {
	c.t.Helper()
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitHealthy(i)
	}
}

func (c *natsCluster) host(i int) string {
	if c.hosts[i] == "" {
		return "127.0.0.1"
	}
	return c.hosts[i]
}

func (c *natsCluster) client(i int) int  { return c.base + 1 + i }
func (c *natsCluster) route(i int) int   { return c.base + 4 + i }
func (c *natsCluster) monitor(i int) int { return c.base + 7 + i }
func (c *natsCluster) store(i int) string {
	return filepath.Join(c.dir, "n"+strconv.Itoa(i))
}

// urls is the -nats-url of the cluster.
func (c *natsCluster) urls() string { return c.urlsOf(0, 1, 2) }

// urlsOf is the client URL list of the nodes given.
func (c *natsCluster) urlsOf(nodes ...int) string {
	var u []string
	for _, i := range nodes {
		u = append(u, fmt.Sprintf("nats://%s:%d", c.host(i), c.client(i)))
	}
	return strings.Join(u, ",")
}

// start launches node i on its ports and store.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	var routes []string
	for j := range 3 {
		routes = append(routes, fmt.Sprintf("nats://%s:%d", c.host(j), c.route(j)))
	}
	args := []string{c.bin, "nats-node", "--name", "n" + strconv.Itoa(i), "--cluster", "cairn-rel", "--host", c.host(i),
		"--port", strconv.Itoa(c.client(i)), "--cluster-port", strconv.Itoa(c.route(i)), "--monitor-port", strconv.Itoa(c.monitor(i)),
		"--routes", strings.Join(routes, ","), "--store", c.store(i)}
	if c.netns[i] != "" {
		// ip netns exec enters the namespace and execs in place, so the
		// process signalled below is the node itself.
		args = append([]string{"ip", "netns", "exec", c.netns[i]}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	logf, err := os.OpenFile(filepath.Join(c.dir, "n"+strconv.Itoa(i)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start nats node %d: %v", i, err)
	}
	_ = logf.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	c.mu.Lock()
	c.procs[i], c.waits[i] = cmd, done
	c.mu.Unlock()
}

// waitHealthy polls node i's /healthz until 200, within a failure guard.
func (c *natsCluster) waitHealthy(i int) {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	url := fmt.Sprintf("http://%s:%d/healthz", c.host(i), c.monitor(i))
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats node n%d not healthy within the guard: %v\n%s", i, err, c.logTail(i))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 sends SIGKILL to node i and reaps it.
func (c *natsCluster) kill9(i int) {
	c.t.Helper()
	c.mu.Lock()
	cmd, done := c.procs[i], c.waits[i]
	c.procs[i], c.waits[i] = nil, nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (c *natsCluster) close() {
	for i := range 3 {
		c.mu.Lock()
		cmd, done := c.procs[i], c.waits[i]
		c.procs[i], c.waits[i] = nil, nil
		c.mu.Unlock()
		if cmd == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if c.t.Failed() {
		for i := range 3 {
			c.t.Logf("nats node n%d log tail:\n%s", i, c.logTail(i))
		}
	}
}

func (c *natsCluster) logTail(i int) string {
	b, err := os.ReadFile(filepath.Join(c.dir, "n"+strconv.Itoa(i)+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// streamName is ingestion replica 0's stream of partition p.
func streamName(p int) string { return fmt.Sprintf("cairn-ingestion-0-events-p%05d", p) }

// leaderOf returns the index of the node leading stream name.
func leaderOf(ctx context.Context, js jetstream.JetStream, name string) (int, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return -1, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return -1, err
	}
	if info.Cluster == nil || !strings.HasPrefix(info.Cluster.Leader, "n") {
		return -1, fmt.Errorf("%s has no leader", name)
	}
	return strconv.Atoi(strings.TrimPrefix(info.Cluster.Leader, "n"))
}

// allCurrent reports why not every stream has a leader and two current
// replicas ("" when they all do).
func allCurrent(ctx context.Context, js jetstream.JetStream) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for p := range partitions {
		st, err := js.Stream(ctx, streamName(p))
		if err != nil {
			return err.Error()
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err.Error()
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return fmt.Sprintf("%s: cluster %+v", streamName(p), info.Cluster)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Sprintf("%s: replica %s not current (lag %d)", streamName(p), r.Name, r.Lag)
			}
		}
	}
	return ""
}

// waitCurrent waits until every stream has a leader and two current
// replicas, within a failure guard.
func waitCurrent(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // failure guard
	for {
		why := allCurrent(ctx, js)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("streams not back to three current replicas: %s", why)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jsCounts are the figures of one leader-loss run.
type jsCounts struct {
	losses          int
	acked, stored   int
	missing, double int
	retries         int
	gap             time.Duration
	killed          []string
}

// TestJetStreamLeaderLoss runs ingestion (the real binary, -log-backend
// jetstream) and stages on a 3-node NATS cluster whose nodes are separate
// processes (`cairn nats-node`). Under paced load with known message ids,
// the leader of a partition's stream is killed with SIGKILL, its store
// directory deleted, and the node started again, empty. At the end no
// acknowledged event may be missing from the log ingestion serves (from
// the streams), none may be in it twice, every stream must be back to
// three current replicas, and stages (consuming ingestion's Subscribe) must
// end equal to a run on the single-node bbolt backend with the same events.
// It reports the longest gap between two acknowledgements.
func TestJetStreamLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	losses := envInt(t, envJSLosses, 1)
	nAcc := envInt(t, envJSAccounts, nAccounts)
	rate := envInt(t, envJSRate, 400)
	base := time.Now().UTC().Truncate(24 * time.Hour)
	events := workload(seed, nAcc, base)
	accounts := make([]string, nAcc)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	nBatches := (len(events) + powerBatch - 1) / powerBatch
	var want snapshot
	t.Run("single node, bbolt", func(t *testing.T) {
		s := newSuite(t)
		want, _ = leaderLossRun(t, s, nil, events, accounts, rate, nil)
	})
	if want == nil {
		t.FailNow()
	}
	t.Run("3 NATS nodes, leader killed", func(t *testing.T) {
		c := startNATS(t)
		s := newSuite(t)
		s.extraArgs = map[string][]string{"ingestion": {"-log-backend", "jetstream", "-nats-url", c.urls()}}
		// Losses spread over the run, none in the first or last tenth.
		at := map[int]int{}
		for k := range losses {
			at[nBatches/10+(k*8*nBatches/10)/max(losses, 1)] = k
		}
		got, n := leaderLossRun(t, s, c, events, accounts, rate, at)
		t.Logf("%d leader losses (killed %s); %d events in %d batches at %d events/s offered: acknowledged %d, in the log %d; acknowledged but missing %d, in the log twice %d; %d batch retries; longest gap between acknowledgements %s",
			n.losses, strings.Join(n.killed, ", "), len(events), nBatches, rate, n.acked, n.stored, n.missing, n.double, n.retries, n.gap.Round(time.Millisecond))
		if n.missing != 0 || n.double != 0 || n.acked != len(events) {
			t.Errorf("acknowledged %d of %d, missing %d, twice %d; want all, 0, 0", n.acked, len(events), n.missing, n.double)
		}
		if n.losses != losses {
			t.Errorf("%d leader losses happened, want %d", n.losses, losses)
		}
		if n.gap > 10*time.Second {
			t.Errorf("longest gap between acknowledgements %s, want at most 10s", n.gap)
		}
		if got != nil {
			if d := want.diff(got, 10, all); len(d) > 0 {
				t.Errorf("stages on JetStream after leader losses differs from the single-node bbolt run:\n%s", strings.Join(d, "\n"))
			}
		}
	})
}

// leaderLossRun starts ingestion and stages, sends the workload paced at
// rate events/s by one sequential client (so each account's events arrive
// in order, as in the single-node run), kills a stream leader before the
// batches named in at (with a cluster), and returns stages' settled state.
func leaderLossRun(t *testing.T, s *suite, c *natsCluster, events []*ingestionv1.Event, accounts []string, rate int, at map[int]int) (snapshot, jsCounts) {
	t.Helper()
	s.start("ingestion")
	s.start("stages")
	ctx := t.Context()
	ic := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))
	var js jetstream.JetStream
	if c != nil {
		nc, err := nats.Connect(c.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if js, err = jetstream.New(nc); err != nil {
			t.Fatal(err)
		}
	}
	var (
		n       jsCounts
		acked   = map[string]bool{}
		last    = time.Now()
		nBatch  = (len(events) + powerBatch - 1) / powerBatch
		tick    = time.Duration(powerBatch) * time.Second / time.Duration(rate)
		started = time.Now()
	)
	for i := range nBatch {
		if k, ok := at[i]; ok && c != nil {
			name := streamName(k % partitions)
			if n.losses > 0 {
				// One disk at a time: the node wiped before must have
				// caught up, as docs/operations-jetstream.md requires; a
				// second wipe before that may take the only other copy.
				w0 := time.Now()
				waitCurrent(t, ctx, js)
				// The test's own wait is no gap of the service's, and
				// the pace resumes after it rather than in a burst.
				last, started = last.Add(time.Since(w0)), started.Add(time.Since(w0))
			}
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			leader, err := leaderOf(ictx, js, name)
			cancel()
			if err != nil {
				t.Fatalf("before batch %d: leader of %s: %v", i, name, err)
			}
			t.Logf("batch %d of %d: SIGKILL n%d, the leader of %s; wipe its store; start it empty", i, nBatch, leader, name)
			c.kill9(leader)
			if err := os.RemoveAll(c.store(leader)); err != nil {
				t.Fatal(err)
			}
			c.start(leader)
			n.losses++
			n.killed = append(n.killed, fmt.Sprintf("n%d (leader of %s)", leader, name))
		}
		if wait := time.Until(started.Add(time.Duration(i) * tick)); wait > 0 {
			time.Sleep(wait)
		}
		batch := events[i*powerBatch : min((i+1)*powerBatch, len(events))]
		resp, retries, err := sendBatch(ctx, ic, batch)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		now := time.Now()
		n.gap, last = max(n.gap, now.Sub(last)), now
		n.retries += retries
		for _, r := range resp.GetResults() {
			switch r.GetStatus() {
			case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
				acked[r.GetMessageId()] = true
			default:
				t.Fatalf("batch %d event %s: %v %s", i, r.GetMessageId(), r.GetStatus(), r.GetReason())
			}
		}
	}
	n.acked = len(acked)
	if c != nil {
		// The wiped node caught up: three current replicas everywhere.
		waitCurrent(t, ctx, js)
	}
	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.stored = len(ids)
	for id, k := range ids {
		if k > 1 {
			n.double++
			t.Errorf("message %s is in the log %d times", id, k)
		}
	}
	for id := range acked {
		if ids[id] == 0 {
			n.missing++
			t.Errorf("acknowledged %s is not in the log", id)
		}
	}
	got, err := s.settleStages(ctx, accounts)
	if err != nil {
		t.Fatal(err)
	}
	staged := 0
	for _, v := range got {
		if v != "not found" {
			staged++
		}
	}
	if staged == 0 {
		t.Fatal("stages placed no account: the comparison would prove nothing")
	}
	return got, n
}
