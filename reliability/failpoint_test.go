package reliability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/failpoint"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/reliability/internal/lazyfs"
)

// Failpoint test knobs. The defaults are the short version that runs in
// `go test` (and make test); the long version raises them, e.g.
//
//	CAIRN_FAILPOINT_ROUNDS=3 CAIRN_FAILPOINT_ACCOUNTS=150 go test -count=1 -run TestFailpoints -v .
const (
	envFailRounds   = "CAIRN_FAILPOINT_ROUNDS"   // how often each point fires in each process and run (default 1)
	envFailSeed     = "CAIRN_FAILPOINT_SEED"     // seed of the plan: order of the points and the hit that fires (default 2027)
	envFailAccounts = "CAIRN_FAILPOINT_ACCOUNTS" // workload accounts (default 50)
	envFailRate     = "CAIRN_FAILPOINT_RATE"     // offered events/s (default 500)
)

// failServices are the processes the failpoint runs arm: the producer of
// the event log and its first consumer.
var failServices = []string{"ingestion", "stages"}

// failPoints are the points each process passes: ingestion commits and
// appends to its log but consumes nothing; stages consumes (cursor
// commits), appends its transitions to its own log and commits.
var failPoints = map[string][]*failpoint.Point{
	"ingestion": {failpoint.StoreBeforeCommit, failpoint.StoreAfterCommit, failpoint.AppendBeforeCommit, failpoint.AppendAfterCommit},
	"stages": {failpoint.StoreBeforeCommit, failpoint.StoreAfterCommit, failpoint.AppendBeforeCommit, failpoint.AppendAfterCommit,
		failpoint.CursorBeforeCommit, failpoint.CursorAfterCommit},
}

// failCase arms one point in one process: it fires on hit at.
type failCase struct {
	point string
	at    int
}

// TestFailpoints runs ingestion and stages under paced load with one
// failpoint (pkg/failpoint) armed at a time in each, so that every failure
// lands exactly before or after a commit's fsync of the store, of a log
// append or of a consumer's cursor, and not wherever a timer happened to
// put it:
//
//   - kill: the point kills its process with SIGKILL; the test sees it
//     die, checks its file, and restarts it with the next point armed.
//   - power cut: each process is on its own lazyfs mount and the point
//     stops its process (SIGSTOP); the test then cuts that mount's power
//     (every unsynced write dropped), SIGKILLs the process, checks the
//     file on the "disk", remounts and restarts it.
//
// After each failure: bbolt's check passes, every cursor stages had
// committed is on the disk, every event acknowledged before it is in the
// log on the disk exactly once, and no stages cursor is past the log's
// durable head. At the end every event is acknowledged and stored once and
// stages' state equals a run without failures. A control with stages on
// -no-sync, stopped right after a commit, must lose data at the cut.
func TestFailpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	rounds := envInt(t, envFailRounds, 1)
	planSeed := uint64(envInt(t, envFailSeed, 2027))
	nAcc := envInt(t, envFailAccounts, nAccounts)
	rate := envInt(t, envFailRate, 500)
	base := time.Now().UTC().Truncate(24 * time.Hour)
	events := workload(seed, nAcc, base) // the crash suite's workload
	accounts := make([]string, nAcc)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	nBatches := (len(events) + powerBatch - 1) / powerBatch
	run := failRun{events: events, accounts: accounts, rate: rate}

	var want snapshot
	t.Run("undisturbed", func(t *testing.T) {
		want, _ = run.do(t, nil)
		if staged := countStaged(want); staged == 0 {
			t.Fatal("baseline stages nothing: the comparison would prove nothing")
		}
	})
	if want == nil {
		t.FailNow()
	}
	check := func(t *testing.T, what string, got snapshot, res failResult) {
		t.Helper()
		res.log(t)
		for _, svc := range failServices {
			for _, p := range failPoints[svc] {
				if res.by[svc+" "+p.Name()] == nil || res.by[svc+" "+p.Name()].cuts == 0 {
					t.Errorf("%s: %s never fired in %s", what, p.Name(), svc)
				}
			}
		}
		if tot := res.total(); tot.broken() > 0 || res.acked != res.stored || res.endDoubled > 0 {
			t.Errorf("%s lost or broke acknowledged state (see above)", what)
		}
		if got != nil {
			if d := want.diff(got, 10, all); len(d) > 0 {
				t.Errorf("stages after %s differs from the undisturbed run:\n%s", what, strings.Join(d, "\n"))
			}
		}
	}

	t.Run("kill", func(t *testing.T) {
		got, res := run.do(t, failPlan(planSeed, rounds, nBatches))
		check(t, "kills at failpoints", got, res)
	})

	t.Run("power cut", func(t *testing.T) {
		if why := lazyfs.Available(); why != "" {
			t.Skip("power cuts at failpoints: " + why)
		}
		cut := run
		cut.cut = true
		got, res := cut.do(t, failPlan(planSeed+1, rounds, nBatches))
		check(t, "power cuts at failpoints", got, res)
	})

	t.Run("control: stages without fsync", func(t *testing.T) {
		if why := lazyfs.Available(); why != "" {
			t.Skip("power cuts at failpoints: " + why)
		}
		// Stopped right after a commit that was not fsynced, stages must
		// lose it at the cut: proof that a stop lands where the test
		// says and that a cut there bites. Late hits: stages has
		// committed a lot.
		t.Setenv("CAIRN_NO_SYNC", "1") // only stages reads it
		ctl := run
		ctl.cut, ctl.control = true, true
		_, res := ctl.do(t, map[string][]failCase{"stages": {
			{point: failpoint.StoreAfterCommit.Name(), at: 20},
			{point: failpoint.CursorAfterCommit.Name(), at: 10},
		}})
		res.log(t)
		for _, p := range []*failpoint.Point{failpoint.StoreAfterCommit, failpoint.CursorAfterCommit} {
			n := res.by["stages "+p.Name()]
			if n == nil || n.cuts == 0 {
				t.Errorf("control: %s never fired in stages", p.Name())
				continue
			}
			if n.pagesDropped == 0 {
				t.Errorf("control: stages without fsync, stopped at %s, lost no page at the cut: the harness does not bite", p.Name())
			}
		}
	})
}

func countStaged(s snapshot) int {
	n := 0
	for _, v := range s {
		if v != "not found" {
			n++
		}
	}
	return n
}

// failPlan gives each process its points, rounds times each, in a seeded
// order, each firing on a seeded hit: spread over the workload but low
// enough that every point fires within its first half (a process commits
// at least once per batch; a point it does not reach is reported).
func failPlan(seed uint64, rounds, nBatches int) map[string][]failCase {
	rng := rand.New(rand.NewPCG(seed, 0xfa11))
	plan := map[string][]failCase{}
	for _, svc := range failServices {
		var q []failCase
		for range rounds {
			for _, p := range failPoints[svc] {
				q = append(q, failCase{point: p.Name()})
			}
		}
		rng.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
		maxHit := max(2, nBatches/(2*len(q)))
		for i := range q {
			q[i].at = 1 + rng.IntN(maxHit)
		}
		plan[svc] = q
	}
	return plan
}

// failRun is one run of the workload on ingestion and stages.
type failRun struct {
	events   []*ingestionv1.Event
	accounts []string
	rate     int
	cut      bool // stop at the failpoint and cut the power (lazyfs), else SIGKILL there
	control  bool // losses are expected: count them without failing
}

// failResult is one run: the counts by "<service> <point>" and the end
// state of the log.
type failResult struct {
	powerResult
	mode string
}

func (r failResult) log(t *testing.T) {
	t.Helper()
	keys := make([]string, 0, len(r.by))
	for k := range r.by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := r.by[k]
		t.Logf("%s at %s: %d, dropping %d unsynced pages; %d acked events had to survive, %d lost, %d doubled; %d committed cursors compared, %d behind on the disk; "+
			"%d cursors compared with the log's durable head, %d past it; %d bbolt checks, %d failed",
			r.mode, k, n.cuts, n.pagesDropped, n.ackedAtCut, n.lost, n.doubled, n.cursors, n.cursorLost, n.downstream, n.ahead, n.checks, n.checkFailed)
	}
	t.Logf("%s: end: %d acked, %d stored, %d doubled", r.mode, r.acked, r.stored, r.endDoubled)
}

// do starts ingestion and stages, each armed with the head of its plan,
// sends the workload paced at rate events/s, handles each failure as the
// points fire (checks, restart with the next point armed), and returns
// stages' settled state and the counts.
func (r failRun) do(t *testing.T, plan map[string][]failCase) (snapshot, failResult) {
	t.Helper()
	ctx := t.Context()
	root := t.TempDir()
	var m *mounts
	if r.cut {
		// Registered before the suite's cleanup, so the mounts are undone
		// after the processes are stopped.
		m = mountAll(t, root, failServices, "power cuts at failpoints")
	}
	s := newSuite(t)
	s.dataDirs = map[string]string{}
	s.extraEnv = map[string][]string{}
	for _, svc := range failServices {
		s.dataDirs[svc] = filepath.Join(root, "data", svc)
		if r.cut {
			s.dataDirs[svc] = m.point[svc]
		}
	}
	file := func(svc string) string {
		if r.cut {
			return filepath.Join(m.backing[svc], svc+".db")
		}
		return filepath.Join(s.dataDirs[svc], svc+".db")
	}
	res := failResult{powerResult: powerResult{by: map[string]*powerCounts{}}, mode: "kill"}
	if r.cut {
		res.mode = "power cut"
	}
	failf := t.Errorf
	if r.control {
		failf = t.Logf
	}
	var (
		queue     = map[string][]failCase{}
		armed     = map[string]*failCase{}
		acked     = map[string]bool{}
		committed = map[uint32]uint64{} // the highest stages ingestion cursor seen committed
		scraped   = make(chan cursors, 1)
		scraping  bool
	)
	for svc, q := range plan {
		queue[svc] = slices.Clone(q)
	}
	fold := func(c cursors) {
		for p, v := range c["ingestion"] {
			committed[p] = max(committed[p], v)
		}
	}
	// scrape reads stages' committed cursors in the background (stages
	// may be stopped at a failpoint and not answer); the result arrives
	// on scraped.
	scrape := func() {
		if scraping {
			return
		}
		scraping = true
		go func() {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			c, _ := s.committedCursors(sctx, "stages")
			scraped <- c
		}()
	}

	// down reports whether svc went down at its failpoint: killed (kill
	// mode) or stopped (power-cut mode). Any other exit fails the test.
	down := func(svc string) bool {
		s.mu.Lock()
		cmd, done := s.procs[svc], s.waits()[svc]
		s.mu.Unlock()
		if cmd == nil {
			return false
		}
		select {
		case err := <-done:
			done <- err // kill and stop read it again
			var ee *exec.ExitError
			if r.cut || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("%s exited (%v), not at a failpoint\n%s", svc, err, s.logTail(svc))
			}
			return true
		default:
		}
		return r.cut && stopped(cmd.Process.Pid)
	}

	// handle deals with svc down at its armed point: cut its power (in
	// power-cut mode), reap it, check its file on the disk, and pop the
	// point from its queue. The caller restarts it.
	handle := func(svc string) {
		c := armed[svc]
		if c == nil {
			t.Fatalf("%s went down with no failpoint armed\n%s", svc, s.logTail(svc))
		}
		key := svc + " " + c.point
		at := fmt.Sprintf("%s of %s at the %s hit of %s", res.mode, svc, ordinal(c.at), c.point)
		var n powerCounts
		defer func() {
			if res.by[key] == nil {
				res.by[key] = &powerCounts{}
			}
			res.by[key].add(n)
		}()
		var mustHave []string
		if svc == "ingestion" {
			for id := range acked {
				mustHave = append(mustHave, id)
			}
		}
		if r.cut {
			lost := m.get(svc).Cut()
			s.kill(svc)
			if err := m.get(svc).Unmount(); err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			n.pagesDropped += lost.Pages
			if lost.Pages > 0 {
				n.midWrite++
			}
		} else {
			s.kill(svc) // reaps it
		}
		n.cuts++
		armed[svc] = nil
		queue[svc] = queue[svc][1:]
		if want := "failpoint " + c.point + " fired"; !strings.Contains(s.logTail(svc), want) {
			t.Errorf("%s: the log of %s does not say %q:\n%s", at, svc, want, s.logTail(svc))
		}

		n.checks++
		if err := store.Check(file(svc)); err != nil {
			n.checkFailed++
			failf("%s: %v", at, err)
		}
		disk, err := readDisk(file(svc), logNames[svc])
		if err != nil {
			n.checkFailed++
			failf("%s: %v", at, err)
		}
		switch svc {
		case "stages":
			for p, v := range committed {
				n.cursors++
				if d := disk.cursors["ingestion"][p]; d < v {
					n.cursorLost++
					failf("%s: stages committed its ingestion cursor of partition %d up to %d, the disk holds %d", at, p, v, d)
				}
			}
		case "ingestion":
			ids, err := diskEventIDs(file(svc))
			if err != nil {
				n.checkFailed++
				failf("%s: %v", at, err)
			}
			if missing, doubled := n.countAcked(ids, mustHave); missing+doubled > 0 {
				failf("%s: of %d acknowledged events %d are not in the log on the disk and %d are in it twice", at, len(mustHave), missing, doubled)
			}
			// Stages can only have applied records the log had committed.
			for p, v := range committed {
				n.downstream++
				if h := disk.heads[p]; v > h {
					n.ahead++
					t.Errorf("%s: stages applied partition %d up to %d, the log ends at %d on the disk", at, p, v, h)
				}
			}
		}
		if r.cut {
			if err := m.mount(svc); err != nil {
				t.Fatalf("%s: remount: %v", at, err)
			}
		}
		t.Logf("%s: %d unsynced pages dropped; %d acked events had to survive: %d lost, %d doubled; %d committed cursors, %d behind on the disk",
			at, n.pagesDropped, len(mustHave), n.lost, n.doubled, n.cursors, n.cursorLost)
	}

	// launch starts svc armed with the head of its queue.
	launch := func(svc string) {
		armed[svc] = nil
		s.extraEnv[svc] = nil
		if q := queue[svc]; len(q) > 0 {
			armed[svc] = &q[0]
			s.extraEnv[svc] = []string{fmt.Sprintf("%s=%s=%s@%d", failpoint.Env, q[0].point, failAction(r.cut), q[0].at)}
		}
		s.launch(svc)
	}
	running := func(svc string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.procs[svc] != nil
	}
	// up handles every process that went down, starts it again with its
	// next point, and waits until every process is ready. Points fire
	// while processes start too (stages catching up, or waiting for
	// ingestion), so the wait handles them the same way.
	up := func() {
		guard := time.Now().Add(90 * time.Second)
		for {
			for _, svc := range failServices {
				if down(svc) {
					handle(svc)
				}
				if !running(svc) {
					launch(svc)
				}
			}
			ready := true
			for _, svc := range failServices {
				ready = ready && !down(svc) && s.ready(ctx, svc)
			}
			if ready {
				return
			}
			if time.Now().After(guard) {
				var why []string
				for _, svc := range failServices {
					s.mu.Lock()
					cmd := s.procs[svc]
					s.mu.Unlock()
					if cmd != nil {
						why = append(why, fmt.Sprintf("%s: ready %v, %s", svc, s.ready(ctx, svc), procState(cmd.Process.Pid)))
					}
				}
				// A process blocked on its mount points at lazyfs, served
				// by this process: show what its server is doing.
				var dump strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&dump, 2)
				for _, g := range strings.Split(dump.String(), "\n\n") {
					if strings.Contains(g, "lazyfs") {
						t.Log(g)
					}
				}
				t.Fatalf("not ready within the guard: %s", strings.Join(why, "; "))
			}
			time.Sleep(20 * time.Millisecond) // poll interval, bounded by the guard
		}
	}
	// poll handles the processes that went down since the last poll.
	poll := func() {
		for _, svc := range failServices {
			if down(svc) {
				up()
				return
			}
		}
	}

	up()
	ic := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))
	type sent struct {
		resp *ingestionv1.IngestResponse
		err  error
	}
	tick := time.NewTicker(5 * time.Millisecond) // how often failures are looked for
	defer tick.Stop()
	// wait handles failures as they come until due fires or res has a
	// value.
	wait := func(due <-chan time.Time, res <-chan sent) sent {
		for {
			select {
			case <-due:
				return sent{}
			case v := <-res:
				return v
			case c := <-scraped:
				scraping = false
				fold(c)
			case <-tick.C:
				poll()
			}
		}
	}
	nBatch := (len(r.events) + powerBatch - 1) / powerBatch
	interval := time.Duration(powerBatch) * time.Second / time.Duration(r.rate)
	started := time.Now()
	for i := range nBatch {
		// Paced: batch i is due at i intervals after the start.
		if d := time.Until(started.Add(time.Duration(i) * interval)); d > 0 {
			wait(time.After(d), nil)
		}
		batch := r.events[i*powerBatch : min((i+1)*powerBatch, len(r.events))]
		result := make(chan sent, 1)
		go func() {
			resp, _, err := sendBatch(ctx, ic, batch)
			result <- sent{resp, err}
		}()
		got := wait(nil, result)
		if got.err != nil {
			t.Fatalf("batch %d: %v", i, got.err)
		}
		for _, rs := range got.resp.GetResults() {
			switch rs.GetStatus() {
			case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
				acked[rs.GetMessageId()] = true
			default:
				t.Fatalf("batch %d event %s: %v %s", i, rs.GetMessageId(), rs.GetStatus(), rs.GetReason())
			}
		}
		scrape()
		if t.Failed() && !r.control {
			t.FailNow()
		}
	}

	// Points still armed once stages has applied the whole log can no
	// longer fire: wait for that (handling what fires meanwhile), then
	// restart the processes that still have one armed without it.
	guard := time.Now().Add(2 * time.Minute)
	for {
		poll()
		if armed["ingestion"] == nil && armed["stages"] == nil {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		heads, err := s.ingestionHeads(cctx)
		var cur cursors
		if err == nil {
			cur, err = s.committedCursors(cctx, "stages")
		}
		cancel()
		if err == nil && equalCursors(heads, cur["ingestion"]) {
			poll()
			for _, svc := range failServices {
				if c := armed[svc]; c != nil {
					// A graceful stop could commit, and fire it.
					t.Logf("%s: %s armed at hit %d did not fire before the end of the workload: SIGKILL and restart without it", svc, c.point, c.at)
					s.kill(svc)
					queue[svc] = nil
					up()
				}
			}
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("stages did not catch up within the guard (%v)", err)
		}
		select { // one poll interval
		case c := <-scraped:
			scraping = false
			fold(c)
		case <-tick.C:
		}
	}
	if scraping {
		fold(<-scraped)
	}

	s.checkLogEnd(t, ctx, acked, len(r.events), &res.powerResult)
	got, err := s.settleStages(ctx, r.accounts)
	if err != nil {
		t.Fatal(err)
	}
	s.stop("stages")
	s.stop("ingestion")
	for _, svc := range failServices {
		if err := store.Check(file(svc)); err != nil {
			t.Errorf("at the end: %v", err)
		}
	}
	return got, res
}

func failAction(cut bool) string {
	if cut {
		return "stop"
	}
	return "kill"
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

// procState describes a process that does not become ready: its state
// (/proc/<pid>/stat) and where it waits in the kernel (wchan).
func procState(pid int) string {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	st := string(stat)
	if i := strings.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) {
		st = st[i+2 : i+3]
	}
	return fmt.Sprintf("pid %d state %s wchan %s", pid, st, wchan)
}

// stopped reports whether process pid is stopped by a signal (state T in
// /proc/<pid>/stat).
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The command name in parentheses may hold blanks; the state follows it.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'T'
}

// diskEventIDs counts each message id in ingestion's event log as its
// file holds it (bucket log/events/p<partition>/records: an 8-byte stamp,
// then the LogRecord), as ingestedIDs counts them through Subscribe.
func diskEventIDs(path string) (map[string]int, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer db.Close()
	ids := map[string]int{}
	err = db.View(func(tx *bbolt.Tx) error {
		lb := tx.Bucket([]byte("log"))
		if lb != nil {
			lb = lb.Bucket([]byte("events"))
		}
		if lb == nil {
			return nil
		}
		for p := uint32(0); p < partitions; p++ {
			pb := lb.Bucket(fmt.Appendf(nil, "p%05d", p))
			if pb == nil || pb.Bucket([]byte("records")) == nil {
				continue
			}
			err := pb.Bucket([]byte("records")).ForEach(func(k, v []byte) error {
				var rec ingestionv1.LogRecord
				if len(v) < 8 {
					return fmt.Errorf("partition %d offset %d: short record", p, store.ParseU64(k))
				}
				if err := proto.Unmarshal(v[8:], &rec); err != nil {
					return fmt.Errorf("partition %d offset %d: %w", p, store.ParseU64(k), err)
				}
				if ev := rec.GetEvent(); ev != nil && !ev.GetReattributed() {
					ids[ev.GetMessageId()]++
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}
