//go:build linux

package reliability

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-dev/cairn/pkg/stream/jetlog"
)

// JetStream partition test knobs. The defaults are the short version; the
// long one, e.g.
//
//	CAIRN_JSPART_CUTS=3 CAIRN_JSPART_HOLD=30 go test -count=1 -run TestJetStreamPartition -v .
const (
	envJSPartCuts = "CAIRN_JSPART_CUTS" // partitions in the run (default 1)
	envJSPartHold = "CAIRN_JSPART_HOLD" // seconds a partition holds after the majority elected (default 5)
)

// netLab is three network namespaces, each joined by a veth pair to a
// bridge in the test's own namespace, so that the test reaches every node
// and a node's links to its peers can be cut while its link to the test
// stays up: a client on the minority side keeps talking to the old leader.
type netLab struct {
	t      *testing.T
	name   string
	subnet string
	ns     [3]string
	// cuts are the blackhole routes in place: in ns[from], to host(to).
	cuts [][2]int
}

// newNetLab builds the namespaces, or skips the test where they cannot be
// made (not root, no ip(8), no namespaces in this container).
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("no ip(8): %v", err)
	}
	removeStaleLabs()
	id := os.Getpid() // interface names stay within 15 bytes: cp<pid>br
	l := &netLab{t: t, name: fmt.Sprintf("cp%d", id), subnet: fmt.Sprintf("10.213.%d", id%250+1)}
	t.Cleanup(l.close)
	if out, err := exec.Command("ip", "netns", "add", l.name+"n0").CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	l.ns[0] = l.name + "n0"
	br := l.name + "br"
	l.ip("link", "add", br, "type", "bridge")
	l.ip("addr", "add", l.subnet+".254/24", "dev", br)
	l.ip("link", "set", br, "up")
	for i := range 3 {
		ns, veth := fmt.Sprintf("%sn%d", l.name, i), fmt.Sprintf("%sv%d", l.name, i)
		if i > 0 {
			l.ip("netns", "add", ns)
			l.ns[i] = ns
		}
		l.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("link", "set", veth, "master", br, "up")
		l.ip("-n", ns, "addr", "add", l.host(i)+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	return l
}

// removeStaleLabs deletes the namespaces and bridges of labs whose test
// process is gone (a run killed before its cleanup), so that they neither
// pile up nor hold the subnet a later run picks.
func removeStaleLabs() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		var pid, node int
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if n, _ := fmt.Sscanf(name, "cp%dn%d", &pid, &node); n != 2 || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
		_ = exec.Command("ip", "link", "del", fmt.Sprintf("cp%dbr", pid)).Run()
	}
}

func (l *netLab) host(i int) string { return fmt.Sprintf("%s.%d", l.subnet, i+1) }

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cut isolates node i from its peers, both ways, with blackhole routes:
// the test (on the bridge) still reaches every node.
func (l *netLab) cut(i int) {
	l.t.Helper()
	for j := range 3 {
		if j == i {
			continue
		}
		for _, c := range [][2]int{{i, j}, {j, i}} {
			l.ip("-n", l.ns[c[0]], "route", "add", "blackhole", l.host(c[1])+"/32")
			l.cuts = append(l.cuts, c)
		}
	}
}

// heal removes every cut.
func (l *netLab) heal() {
	l.t.Helper()
	for _, c := range l.cuts {
		l.ip("-n", l.ns[c[0]], "route", "del", "blackhole", l.host(c[1])+"/32")
	}
	l.cuts = nil
}

func (l *netLab) close() {
	for _, ns := range l.ns {
		if ns != "" {
			_ = exec.Command("ip", "netns", "del", ns).Run() // takes its veth pair along
		}
	}
	_ = exec.Command("ip", "link", "del", l.name+"br").Run()
}

// partCounts are the figures of one partition run.
type partCounts struct {
	cuts             int
	acked, stored    int
	missing, double  int
	appendErrs       int
	minoritySent     int
	minorityAcked    int
	minorityStored   int
	ackedPartitioned int
	// The stranded writer: connected to the node that gets cut off, with
	// every node in its URL list, on a log of its own.
	strandedAcked, strandedPartitioned, strandedMissing int
	electMax, catchUpMax                                time.Duration
	gap                                                 time.Duration
	records                                             int
	digest                                              string
}

// TestJetStreamPartition runs a 3-node NATS cluster (`cairn nats-node`),
// each node in its own network namespace, and a Cairn log writer (jetlog,
// as ingestion uses it) on the majority side under paced load. The stream
// leader's links to its peers are cut while a second client, connected
// only to that old leader, keeps publishing. Raft promises, and the test
// checks, that:
//   - the minority side acknowledges nothing, and none of its records is
//     in the stream after healing;
//   - the majority elects a leader and the writer's appends are
//     acknowledged again while the partition holds;
//   - every acknowledged record is in the stream once;
//   - after healing, all three replicas report the same stream state and,
//     each in turn made leader, serve the same records (SHA-256 of every
//     sequence, message id and payload).
func TestJetStreamPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process JetStream test")
	}
	cuts := envInt(t, envJSPartCuts, 1)
	hold := time.Duration(envInt(t, envJSPartHold, 5)) * time.Second
	lab := newNetLab(t)
	c := newNATS(t)
	for i := range 3 {
		c.hosts[i], c.netns[i] = lab.host(i), lab.ns[i]
	}
	c.startAll()

	pc := partitionRun(t, c, lab, cuts, hold)
	t.Logf("partition: %d cuts (hold %v), majority acked %d (%d while partitioned, after the election), stored %d, missing %d, doubled %d, append errors %d; "+
		"minority sent %d, acked %d, stored %d; longest election %v, longest catch-up after healing %v, longest gap between acks %v; "+
		"replicas agree on %d records (sha256 %s)",
		pc.cuts, hold, pc.acked, pc.ackedPartitioned, pc.stored, pc.missing, pc.double, pc.appendErrs,
		pc.minoritySent, pc.minorityAcked, pc.minorityStored, pc.electMax.Round(time.Millisecond), pc.catchUpMax.Round(time.Millisecond),
		pc.gap.Round(time.Millisecond), pc.records, pc.digest[:16])
	if pc.missing != 0 || pc.double != 0 {
		t.Errorf("acknowledged records missing %d, doubled %d; want 0 and 0", pc.missing, pc.double)
	}
	if pc.minorityAcked != 0 || pc.minorityStored != 0 {
		t.Errorf("the minority side acknowledged %d records and the stream holds %d of its records; want 0 and 0", pc.minorityAcked, pc.minorityStored)
	}
	t.Logf("partition: the stranded writer (connected to the node cut off) acked %d (%d while partitioned, after the election), %d missing or doubled",
		pc.strandedAcked, pc.strandedPartitioned, pc.strandedMissing)
	if pc.strandedPartitioned == 0 || pc.strandedMissing != 0 {
		t.Errorf("the writer connected to the node cut off: %d appends acknowledged while partitioned (want some: it must move to the majority), %d missing or doubled (want 0)", pc.strandedPartitioned, pc.strandedMissing)
	}
	if pc.ackedPartitioned == 0 {
		t.Errorf("no append was acknowledged on the majority side while partitioned")
	}
}

const partStream = "cairn-partition"

// partitionRun does the cuts and returns the counts; it fails the test on
// anything it cannot measure.
func partitionRun(t *testing.T, c *natsCluster, lab *netLab, cuts int, hold time.Duration) partCounts {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cuts)*(hold+3*time.Minute)+2*time.Minute) // failure guard
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := jetlog.Options{Name: partStream, Partitions: 1, Replicas: 3, Writer: "majority", Timeout: 2 * time.Second, Logger: quiet}

	admin, err := nats.Connect(c.urls(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close()
	if _, err := jetlog.Open(ctx, admin, opts); err != nil {
		t.Fatalf("create the stream: %v", err)
	}
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	subject := partStream + ".p00000"
	name := partStream + "-p00000"

	var pc partCounts
	var mu sync.Mutex
	acked := map[string]int{}
	var lastAck time.Time
	var electedAt time.Time

	// The writer: paced appends of unique payloads, never resent (a
	// failed append's outcome is unknown, so resending could store it
	// twice and hide a duplicate NATS made).
	writer := func(ctx context.Context, conn *nats.Conn, from int) (int, error) {
		lg, err := jetlog.Open(ctx, conn, opts)
		if err != nil {
			return from, err
		}
		n := from
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return n, nil
			case <-tick.C:
			}
			batch := make([][]byte, 5)
			for k := range batch {
				batch[k] = fmt.Appendf(nil, "maj-%07d", n+k)
			}
			n += len(batch)
			actx, acancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := lg.Append(actx, 0, batch...)
			acancel()
			now := time.Now()
			mu.Lock()
			if err != nil {
				pc.appendErrs++
			} else {
				for _, b := range batch {
					acked[string(b)]++
				}
				if !lastAck.IsZero() && now.Sub(lastAck) > pc.gap {
					pc.gap = now.Sub(lastAck)
				}
				lastAck = now
				if !electedAt.IsZero() {
					pc.ackedPartitioned += len(batch)
				}
			}
			mu.Unlock()
		}
	}

	// The stranded writer appends to a second log through a connection
	// to the node about to be cut off (its URL first, no randomising):
	// jetlog must move it to a server that can reach a quorum.
	optsB := opts
	optsB.Name, optsB.Writer = partStream+"-b", "stranded"
	ackedB := map[string]int{}
	stranded := func(ctx context.Context, conn *nats.Conn, from int) (int, error) {
		lg, err := jetlog.Open(ctx, conn, optsB)
		if err != nil {
			return from, err
		}
		n := from
		for ctx.Err() == nil {
			b := fmt.Appendf(nil, "b-%07d", n)
			n++
			actx, acancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := lg.Append(actx, 0, b)
			acancel()
			mu.Lock()
			if err == nil {
				ackedB[string(b)]++
				if !electedAt.IsZero() {
					pc.strandedPartitioned++
				}
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		return n, nil
	}
	nextB := 0

	next := 0
	for cut := range cuts {
		leader, err := leaderOf(ctx, ajs, name)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		var majority []int
		for i := range 3 {
			if i != leader {
				majority = append(majority, i)
			}
		}
		// The writer is on the majority side: it connects to the two
		// nodes that will keep quorum.
		mconn, err := nats.Connect(c.urlsOf(majority...), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatalf("connect the majority: %v", err)
		}
		wctx, wstop := context.WithCancel(ctx)
		wdone := make(chan int, 1)
		go func() {
			n, err := writer(wctx, mconn, next)
			if err != nil {
				t.Errorf("writer: %v", err)
			}
			wdone <- n
		}()
		order := append([]int{leader}, majority...)
		sconn, err := nats.Connect(c.urlsOf(order...), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatalf("connect the stranded writer: %v", err)
		}
		if got := sconn.ConnectedServerName(); got != fmt.Sprintf("n%d", leader) {
			t.Fatalf("the stranded writer is connected to %s, not the leader n%d", got, leader)
		}
		sctx, sstop := context.WithCancel(ctx)
		sdone := make(chan int, 1)
		go func() {
			n, err := stranded(sctx, sconn, nextB)
			if err != nil {
				t.Errorf("stranded writer: %v", err)
			}
			sdone <- n
		}()
		waitAcks(t, ctx, &mu, acked, 100)

		mu.Lock()
		electedAt = time.Time{}
		mu.Unlock()
		t.Logf("cut %d: leader n%d, acked %d", cut, leader, len(acked))
		lab.cut(leader)
		cutAt := time.Now()

		// The minority client talks to the old leader only.
		minConn, err := nats.Connect(c.urlsOf(leader), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatalf("connect the minority: %v", err)
		}
		mjs, err := jetstream.New(minConn)
		if err != nil {
			t.Fatal(err)
		}
		mctx, mstop := context.WithCancel(ctx)
		mdone := make(chan struct{})
		go func() {
			defer close(mdone)
			for k := 0; mctx.Err() == nil; k++ {
				id := fmt.Sprintf("min-%d-%05d", cut, k)
				msg := &nats.Msg{Subject: subject, Data: []byte(id), Header: nats.Header{}}
				msg.Header.Set(nats.MsgIdHdr, id)
				msg.Header.Set(jetlog.HeaderWriter, "minority")
				pctx, pcancel := context.WithTimeout(mctx, 2*time.Second)
				_, err := mjs.PublishMsg(pctx, msg)
				pcancel()
				mu.Lock()
				pc.minoritySent++
				if err == nil {
					pc.minorityAcked++
				}
				mu.Unlock()
				select {
				case <-mctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()

		// The majority elects a new leader of the stream.
		mjsAdmin, err := jetstream.New(mconn)
		if err != nil {
			t.Fatal(err)
		}
		for {
			lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
			l, err := leaderOf(lctx, mjsAdmin, name)
			lcancel()
			if err == nil && l != leader {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("cut %d: no new leader on the majority side: %v", cut, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("cut %d: elected after %v", cut, time.Since(cutAt))
		mu.Lock()
		electedAt = time.Now()
		if d := electedAt.Sub(cutAt); d > pc.electMax {
			pc.electMax = d
		}
		mu.Unlock()
		time.Sleep(hold) // the partition holds while both sides write

		mstop()
		<-mdone
		minConn.Close()
		mu.Lock()
		electedAt = time.Time{} // acks from here are not the partitioned majority's
		mu.Unlock()
		lab.heal()
		healAt := time.Now()
		waitStreamCurrent(t, ctx, ajs, name)
		if d := time.Since(healAt); d > pc.catchUpMax {
			pc.catchUpMax = d
		}
		waitAcks(t, ctx, &mu, acked, 50)
		wstop()
		next = <-wdone
		mconn.Close()
		sstop()
		nextB = <-sdone
		sconn.Close()
		pc.cuts++
	}
	pc.acked = len(acked)
	pc.strandedAcked = len(ackedB)
	waitStreamCurrent(t, ctx, ajs, partStream+"-b-p00000") // its leader may still be settling after the last heal
	gotB, _, _ := readStream(t, ctx, ajs, partStream+"-b-p00000")
	for id := range ackedB {
		if gotB[id] != 1 {
			pc.strandedMissing++
		}
	}

	// Every replica, made leader in turn, must serve the same records.
	var digests []string
	var records map[string]int
	for i := range 3 {
		makeLeader(t, ctx, admin, ajs, name, i)
		got, digest, n := readStream(t, ctx, ajs, name)
		digests = append(digests, digest)
		if records == nil {
			records, pc.records, pc.digest = got, n, digest
		}
	}
	if len(slices.Compact(slices.Clone(digests))) != 1 {
		t.Errorf("replicas serve different records: %v", digests)
	}
	states := make([]string, 3)
	for i := range 3 {
		states[i] = replicaState(t, c, i, name)
	}
	if states[0] != states[1] || states[1] != states[2] {
		t.Errorf("replica states differ: %q", states)
	}
	for id := range acked {
		switch records[id] {
		case 0:
			pc.missing++
		case 1:
		default:
			pc.double++
		}
	}
	for id, k := range records {
		if strings.HasPrefix(id, "min-") {
			pc.minorityStored += k
		}
		if k > 1 && acked[id] == 0 {
			pc.double++ // doubled though never acknowledged: still a duplicate
		}
		pc.stored += k
	}
	return pc
}

// waitAcks waits until n more records are acknowledged.
func waitAcks(t *testing.T, ctx context.Context, mu *sync.Mutex, acked map[string]int, more int) {
	t.Helper()
	mu.Lock()
	n := len(acked) + more
	mu.Unlock()
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d appends acknowledged before the guard", k, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStreamCurrent waits until stream name has a leader and two current
// replicas.
func waitStreamCurrent(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) {
	t.Helper()
	why := ""
	for ctx.Err() == nil {
		why = streamCurrent(ctx, js, name)
		if why == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not back to three current replicas: %s", name, why)
}

func streamCurrent(ctx context.Context, js jetstream.JetStream, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return err.Error()
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err.Error()
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		return fmt.Sprintf("cluster %+v", info.Cluster)
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			return fmt.Sprintf("replica %s not current (lag %d)", r.Name, r.Lag)
		}
	}
	return ""
}

// makeLeader moves stream name's leadership to node i (a step-down with
// node i preferred) and waits until every replica is current again.
func makeLeader(t *testing.T, ctx context.Context, nc *nats.Conn, js jetstream.JetStream, name string, i int) {
	t.Helper()
	want := fmt.Sprintf("n%d", i)
	for ctx.Err() == nil {
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		l, err := leaderOf(lctx, js, name)
		lcancel()
		if err == nil && l == i && streamCurrent(ctx, js, name) == "" {
			return
		}
		if err == nil && l != i {
			req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": want}})
			if _, err := nc.RequestWithContext(ctx, fmt.Sprintf("$JS.API.STREAM.LEADER.STEPDOWN.%s", name), req); err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("step down to %s: %v", want, err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: leadership did not move to %s", name, want)
}

// readStream reads every record of stream name from its leader: the count
// per payload, and a SHA-256 over sequence, message id and payload.
func readStream(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) (map[string]int, string, int) {
	t.Helper()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	got := map[string]int{}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("read %s #%d: %v", name, seq, err)
		}
		fmt.Fprintf(h, "%d\x00%s\x00", m.Sequence, m.Header.Get(nats.MsgIdHdr))
		h.Write(m.Data)
		got[string(m.Data)]++
		n++
	}
	return got, hex.EncodeToString(h.Sum(nil)), n
}

// replicaState is node i's own view of stream name, from its /jsz:
// messages, bytes and first and last sequence.
func replicaState(t *testing.T, c *natsCluster, i int, name string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/jsz?streams=true", c.host(i), c.monitor(i)))
	if err != nil {
		t.Fatalf("n%d /jsz: %v", i, err)
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs     uint64 `json:"messages"`
					Bytes    uint64 `json:"bytes"`
					FirstSeq uint64 `json:"first_seq"`
					LastSeq  uint64 `json:"last_seq"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		t.Fatalf("n%d /jsz: %v", i, err)
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == name {
				return fmt.Sprintf("%d msgs, %d bytes, #%d-#%d", s.State.Msgs, s.State.Bytes, s.State.FirstSeq, s.State.LastSeq)
			}
		}
	}
	t.Fatalf("n%d /jsz lists no stream %s", i, name)
	return ""
}
