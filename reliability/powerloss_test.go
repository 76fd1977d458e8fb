package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/reliability/internal/lazyfs"
)

// Power-loss test knobs. The defaults are the short version that runs in
// `go test` (and make test); the long version raises them, e.g.
//
//	CAIRN_POWERLOSS_CUTS=20 CAIRN_POWERLOSS_ACCOUNTS=300 go test -count=1 -run TestPowerLoss -v .
const (
	envPowerCuts     = "CAIRN_POWERLOSS_CUTS"     // power cuts per target: each service and the whole machine (default 1)
	envPowerSeed     = "CAIRN_POWERLOSS_SEED"     // seed of the cut plan (default 2026)
	envPowerAccounts = "CAIRN_POWERLOSS_ACCOUNTS" // workload accounts (default 50)
	envPowerRate     = "CAIRN_POWERLOSS_RATE"     // offered events/s (default 500)
)

// powerBatch is the batch size: small, so that the workload has many
// batches for cuts to land in.
const powerBatch = 10

// powerServices are the stateful services, in dependency order: each runs
// on its own lazyfs mount, so that a cut can hit one process (its
// unsynced writes dropped, SIGKILL, restart) or all of them at once.
var powerServices = []string{"ingestion", "stages", "health", "routing", "plays"}

// wholeMachine is the cut target that hits every service at once.
const wholeMachine = "all"

// powerTargets are what a cut hits, in report order.
var powerTargets = append(append([]string{}, powerServices...), wholeMachine)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// powerCounts are the figures of one cut target, summed over its cuts.
type powerCounts struct {
	cuts          int
	pagesDropped  int // unsynced pages the cuts dropped
	midWrite      int // cuts that dropped any: they landed between a write and its fsync
	ackedAtCut    int // acknowledged events that had to survive a cut of ingestion, summed over cuts
	lost, doubled int // of those, missing from or doubled in the log after the restart
	cursors       int // committed cursors (consumer × partition × cut) compared with the disk
	cursorLost    int // of those, behind on the disk
	downstream    int // cursors of consumers of a cut log compared with its durable head
	ahead         int // of those, past it
	checks        int // bbolt checks of the files of the cut processes
	checkFailed   int
}

func (c *powerCounts) add(o powerCounts) {
	c.cuts += o.cuts
	c.pagesDropped += o.pagesDropped
	c.midWrite += o.midWrite
	c.ackedAtCut += o.ackedAtCut
	c.lost += o.lost
	c.doubled += o.doubled
	c.cursors += o.cursors
	c.cursorLost += o.cursorLost
	c.downstream += o.downstream
	c.ahead += o.ahead
	c.checks += o.checks
	c.checkFailed += o.checkFailed
}

// countAcked counts, of the events acknowledged before a cut (mustHave),
// those missing from the log read back (ids: message id to copies) and
// those in it twice, and adds them to c.
func (c *powerCounts) countAcked(ids map[string]int, mustHave []string) (missing, doubled int) {
	for _, id := range mustHave {
		switch ids[id] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	c.ackedAtCut += len(mustHave)
	c.lost += missing
	c.doubled += doubled
	return missing, doubled
}

func (c powerCounts) broken() int {
	return c.lost + c.doubled + c.cursorLost + c.ahead + c.checkFailed
}

// powerResult is one run: the counts by cut target and the end state of
// the log.
type powerResult struct {
	by                        map[string]*powerCounts
	acked, stored, endDoubled int
}

// mountAll gives each service a lazyfs mount under root (its backing
// directory root/disk/<svc>, mounted on root/mnt/<svc>), skipping the test,
// with why, where FUSE cannot mount. The mounts are undone at cleanup,
// which a caller registers before the suite's so that it runs after the
// processes are stopped.
func mountAll(t *testing.T, root string, services []string, why string) *mounts {
	t.Helper()
	m := &mounts{backing: map[string]string{}, point: map[string]string{}, fs: map[string]*lazyfs.FS{}}
	for _, svc := range services {
		m.backing[svc], m.point[svc] = filepath.Join(root, "disk", svc), filepath.Join(root, "mnt", svc)
		for _, d := range []string{m.backing[svc], m.point[svc]} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.mount(svc); err != nil {
			t.Skipf("%s: cannot mount FUSE here: %v", why, err)
		}
	}
	t.Cleanup(func() {
		for _, svc := range services {
			if err := m.get(svc).Unmount(); err != nil {
				t.Error(err)
			}
		}
	})
	return m
}

// checkLogEnd reads ingestion's log back at the end of a run: every
// acknowledged event in it once, and want distinct events acknowledged.
// It sets res's end counts.
func (s *suite) checkLogEnd(t *testing.T, ctx context.Context, acked map[string]bool, want int, res *powerResult) {
	t.Helper()
	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res.acked, res.stored = len(acked), len(ids)
	for id, c := range ids {
		if c > 1 {
			res.endDoubled++
			t.Errorf("message %s is in the log %d times", id, c)
		}
	}
	for id := range acked {
		if ids[id] == 0 {
			t.Errorf("acknowledged %s is not in the log", id)
		}
	}
	if len(acked) != want {
		t.Errorf("acknowledged %d distinct events, want %d", len(acked), want)
	}
}

func (r powerResult) total() powerCounts {
	var c powerCounts
	for _, n := range r.by {
		c.add(*n)
	}
	return c
}

// TestPowerLoss runs every stateful service (ingestion, stages, health,
// routing, plays) with its data directory on its own lazyfs mount
// (reliability/internal/lazyfs): writes not yet fsynced live only in
// memory. Under paced load it cuts the power at seeded random moments,
// CAIRN_POWERLOSS_CUTS times to each service alone and to all of them at
// once: the cut processes lose every unsynced write and are SIGKILLed;
// the test checks their files on the "disk" (bbolt check, every committed
// cursor there, no consumer past a log's durable head), remounts and
// restarts them, and checks that every acknowledged event is in the log
// once. At the end nothing acknowledged may be lost or doubled and the
// state of stages, health, routing and plays must equal a run that never
// lost power. A control run with stages on -no-sync must see committed
// cursors go back: proof that the cuts bite.
func TestPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	if why := lazyfs.Available(); why != "" {
		t.Skip("power-loss test: " + why)
	}
	perTarget := envInt(t, envPowerCuts, 1)
	cutSeed := uint64(envInt(t, envPowerSeed, 2026))
	nAcc := envInt(t, envPowerAccounts, nAccounts)
	rate := envInt(t, envPowerRate, 500)
	base := time.Now().UTC().Truncate(24 * time.Hour)
	events := workload(seed, nAcc, base) // the crash suite's workload
	accounts := make([]string, nAcc)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	nBatches := (len(events) + powerBatch - 1) / powerBatch
	if cuts := perTarget * len(powerTargets); cuts > nBatches/2 {
		t.Fatalf("%d cuts in %d batches: raise %s", cuts, nBatches, envPowerAccounts)
	}
	run := powerRun{events: events, accounts: accounts, rate: rate, services: powerServices}

	var want snapshot
	t.Run("undisturbed", func(t *testing.T) {
		want, _ = run.do(t, nil)
		if want == nil {
			return
		}
		checkNonTrivial(t, want)
		fired := 0
		for k := range want {
			if strings.HasPrefix(k, "plays/") {
				fired++
			}
		}
		t.Logf("baseline: plays fired for %d accounts", fired)
		if fired == 0 {
			t.Fatal("baseline fires no play: the comparison would prove nothing")
		}
	})
	if want == nil {
		t.FailNow()
	}

	t.Run("power cuts", func(t *testing.T) {
		got, r := run.do(t, cutPlan(cutSeed, perTarget, powerTargets, nBatches, rate))
		for _, target := range powerTargets {
			n := r.by[target]
			if n == nil {
				continue
			}
			t.Logf("%-9s %2d cuts, %d between a write and its fsync (%d unsynced pages dropped); acked events that had to survive a cut %d: %d lost, %d doubled; "+
				"committed cursors %d: %d went back; downstream cursors %d: %d past the durable log head; bbolt checks %d: %d failed",
				target, n.cuts, n.midWrite, n.pagesDropped, n.ackedAtCut, n.lost, n.doubled, n.cursors, n.cursorLost, n.downstream, n.ahead, n.checks, n.checkFailed)
		}
		t.Logf("end: %d acked, %d stored, %d doubled", r.acked, r.stored, r.endDoubled)
		if n := r.total(); n.broken()+r.endDoubled > 0 || r.acked != r.stored {
			t.Errorf("power cuts lost or broke acknowledged state (see above)")
		}
		if got != nil {
			compare(t, "after power cuts", want, got)
		}
	})

	t.Run("control: stages without fsync", func(t *testing.T) {
		// Only stages reads CAIRN_NO_SYNC (-no-sync): its commits stay in
		// lazyfs's memory until bbolt grows the file, so a cut must take
		// committed cursors back. Late cuts: stages has committed a lot.
		t.Setenv("CAIRN_NO_SYNC", "1")
		ctl := powerRun{events: events, accounts: accounts, rate: rate, services: []string{"ingestion", "stages"}, control: true}
		plan := map[int]cutSpec{nBatches / 2: {target: "stages"}, 3 * nBatches / 4: {target: "stages"}}
		got, r := ctl.do(t, plan)
		n := r.total()
		t.Logf("control, %d cuts of stages (%d unsynced pages dropped): %d of %d committed cursors went back, %d bbolt checks failed; acked events lost %d",
			n.cuts, n.pagesDropped, n.cursorLost, n.cursors, n.checkFailed, n.lost)
		if n.cursorLost == 0 && n.checkFailed == 0 {
			t.Errorf("stages ran without fsync and %d power cuts lost none of its committed cursors: the harness does not bite", n.cuts)
		}
		// Losing cursors with the state they commit is consistent: stages
		// re-reads the log and still ends where the baseline did.
		if got != nil {
			if d := want.diff(got, 10, func(k string) bool { return strings.HasPrefix(k, "stages/") }); len(d) > 0 {
				t.Logf("stages without fsync after cuts differs from the undisturbed run:\n%s", strings.Join(d, "\n"))
			}
		}
	})
}

// cutSpec is one planned cut: what it hits and how long after its batch
// is sent.
type cutSpec struct {
	target string
	delay  time.Duration
}

// cutPlan picks, with the seed, perTarget batches for each target during
// which the power is cut, and how long after the batch is sent (within
// two batch intervals).
func cutPlan(seed uint64, perTarget int, targets []string, nBatches, rate int) map[int]cutSpec {
	rng := rand.New(rand.NewPCG(seed, 0x9c))
	interval := time.Duration(powerBatch) * time.Second / time.Duration(rate)
	plan := map[int]cutSpec{}
	for range perTarget {
		for _, target := range targets {
			for {
				b := 2 + rng.IntN(nBatches-2)
				if _, taken := plan[b]; !taken {
					plan[b] = cutSpec{target: target, delay: time.Duration(rng.Int64N(int64(2 * interval)))}
					break
				}
			}
		}
	}
	return plan
}

// powerRun is one run of the workload on lazyfs mounts.
type powerRun struct {
	events   []*ingestionv1.Event
	accounts []string
	rate     int
	services []string // the processes to run, in dependency order
	control  bool     // losses are expected: count them without failing
}

// mounts are the lazyfs mounts of a run, one per service.
type mounts struct {
	mu             sync.Mutex
	backing, point map[string]string
	fs             map[string]*lazyfs.FS
}

func (m *mounts) mount(svc string) error {
	l, err := lazyfs.Mount(m.backing[svc], m.point[svc])
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.fs[svc] = l
	m.mu.Unlock()
	return nil
}

func (m *mounts) get(svc string) *lazyfs.FS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fs[svc]
}

// do starts the run's services, each on its own lazyfs mount, sends the
// workload paced at rate events/s, cuts the power as planned, and returns
// the settled state and the counts.
func (r powerRun) do(t *testing.T, plan map[int]cutSpec) (snapshot, powerResult) {
	t.Helper()
	root := t.TempDir()
	m := mountAll(t, root, r.services, "power-loss test")
	s := newSuite(t)
	s.dataDirs = map[string]string{}
	for _, svc := range r.services {
		s.dataDirs[svc] = m.point[svc]
	}
	runs := func(svc string) bool { return slices.Contains(r.services, svc) }
	ctx := t.Context()
	for _, svc := range r.services {
		if svc == "plays" {
			s.addPlays(t)
		}
		s.start(svc)
		var err error
		switch svc {
		case "routing":
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = setupRouting(actx, routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.admin)))
			cancel()
		case "plays":
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = s.applyPlays(actx)
			cancel()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(svc string) string { return filepath.Join(m.backing[svc], svc+".db") }
	ic := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))

	var (
		res     = powerResult{by: map[string]*powerCounts{}}
		ackMu   sync.Mutex
		acked   = map[string]bool{}
		failf   = t.Errorf
		nBatch  = (len(r.events) + powerBatch - 1) / powerBatch
		tick    = time.Duration(powerBatch) * time.Second / time.Duration(r.rate)
		started = time.Now()
	)
	if r.control {
		failf = t.Logf
	}
	cut := func(batch int, spec cutSpec) {
		var hit []string
		for _, svc := range r.services {
			if spec.target == wholeMachine || spec.target == svc {
				hit = append(hit, svc)
			}
		}
		var n powerCounts
		defer func() {
			if res.by[spec.target] == nil {
				res.by[spec.target] = &powerCounts{}
			}
			res.by[spec.target].add(n)
		}()
		at := fmt.Sprintf("cut of %s at batch %d", spec.target, batch)
		// What the processes about to lose power have committed.
		committed := map[string]cursors{}
		for _, svc := range hit {
			if powerUpstreams[svc] == nil {
				continue
			}
			c, err := s.committedCursors(ctx, svc)
			if err != nil {
				t.Errorf("%s: read %s cursors: %v", at, svc, err)
				return
			}
			committed[svc] = c
		}
		var mustHave []string
		if slices.Contains(hit, "ingestion") {
			ackMu.Lock()
			for id := range acked {
				mustHave = append(mustHave, id)
			}
			ackMu.Unlock()
		}
		// The power goes at once: first the data that was not synced,
		// then the processes (SIGKILL), then the mounts.
		var lost lazyfs.Lost
		for _, svc := range hit {
			l := m.get(svc).Cut()
			lost.Pages += l.Pages
			lost.Files += l.Files
		}
		for _, svc := range hit {
			s.kill(svc)
		}
		for _, svc := range hit {
			if err := m.get(svc).Unmount(); err != nil {
				t.Errorf("%s: %v", at, err)
				return
			}
		}
		n.cuts++
		n.pagesDropped += lost.Pages
		if lost.Pages > 0 {
			n.midWrite++
		}

		// The disk after the cut: each file passes bbolt's check and
		// holds every cursor its process had committed.
		disk := map[string]onDisk{}
		for _, svc := range hit {
			n.checks++
			if err := store.Check(file(svc)); err != nil {
				n.checkFailed++
				failf("%s: %v", at, err)
			}
			d, err := readDisk(file(svc), logNames[svc])
			if err != nil {
				n.checkFailed++
				failf("%s: %v", at, err)
			}
			disk[svc] = d
		}
		for svc, com := range committed {
			for consumer, ps := range com {
				for p, c := range ps {
					n.cursors++
					if d := disk[svc].cursors[consumer][p]; d < c {
						n.cursorLost++
						failf("%s: %s committed its %s cursor of partition %d up to %d, the disk holds %d", at, svc, consumer, p, c, d)
					}
				}
			}
		}
		// No consumer of a cut log has applied a record that the log
		// then lost: the consumers that lost power too as their files
		// hold it, the others as they report it (they can only have
		// received records sent before the cut).
		for _, up := range hit {
			if logNames[up] == "" {
				continue
			}
			for _, down := range r.services {
				if !slices.Contains(powerUpstreams[down], up) {
					continue
				}
				var cur map[uint32]uint64
				if slices.Contains(hit, down) {
					cur = disk[down].cursors[up]
				} else {
					c, err := s.committedCursors(ctx, down)
					if err != nil {
						t.Errorf("%s: read %s cursors: %v", at, down, err)
						return
					}
					cur = c[up]
				}
				for p, c := range cur {
					n.downstream++
					if h := disk[up].heads[p]; c > h {
						n.ahead++
						t.Errorf("%s: %s applied %s partition %d up to %d, the log ends at %d on the disk", at, down, up, p, c, h)
					}
				}
			}
		}

		for _, svc := range hit {
			if err := m.mount(svc); err != nil {
				t.Errorf("%s: remount %s: %v", at, svc, err)
				return
			}
		}
		for _, svc := range hit {
			s.start(svc)
		}
		var missing, doubled int
		if len(mustHave) > 0 {
			ids, err := s.ingestedIDs(ctx)
			if err != nil {
				t.Errorf("after the %s: %v", at, err)
				return
			}
			if missing, doubled = n.countAcked(ids, mustHave); missing+doubled > 0 {
				t.Errorf("%s: of %d acknowledged events %d are not in the log and %d are in it twice", at, len(mustHave), missing, doubled)
			}
		}
		t.Logf("%s (+%v): dropped %d unsynced pages of %d files; %d committed cursors, %d behind on the disk; %d acked events: %d lost, %d doubled",
			at, spec.delay.Round(time.Millisecond), lost.Pages, lost.Files, n.cursors, n.cursorLost, len(mustHave), missing, doubled)
	}

	for i := range nBatch {
		// Paced: batch i is due at i ticks after the start (open loop
		// within the limits of one sequential client).
		if wait := time.Until(started.Add(time.Duration(i) * tick)); wait > 0 {
			time.Sleep(wait)
		}
		batch := r.events[i*powerBatch : min((i+1)*powerBatch, len(r.events))]
		var done chan struct{}
		if spec, ok := plan[i]; ok {
			done = make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(spec.delay) // a seeded point while the batch is in flight
				cut(i, spec)
			}()
		}
		resp, _, err := sendBatch(ctx, ic, batch)
		if done != nil {
			<-done
		}
		if t.Failed() && !r.control {
			t.FailNow()
		}
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		ackMu.Lock()
		for _, rs := range resp.GetResults() {
			switch rs.GetStatus() {
			case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
				acked[rs.GetMessageId()] = true
			default:
				t.Fatalf("batch %d event %s: %v %s", i, rs.GetMessageId(), rs.GetStatus(), rs.GetReason())
			}
		}
		ackMu.Unlock()
	}

	s.checkLogEnd(t, ctx, acked, len(r.events), &res)
	var got snapshot
	var err error
	if runs("plays") {
		got, err = s.settleAll(ctx, r.accounts)
	} else {
		got, err = s.settleStages(ctx, r.accounts)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Stop every process and check the files as they are on the disk.
	for i := len(r.services) - 1; i >= 0; i-- {
		s.stop(r.services[i])
	}
	for _, svc := range r.services {
		if err := store.Check(file(svc)); err != nil {
			t.Errorf("at the end: %v", err)
		}
	}
	return got, res
}

// stagesCursors reads stages' committed ingestion cursors from /metrics
// (the gauge moves only after the commit returned).
func (s *suite) stagesCursors(ctx context.Context) (map[uint32]uint64, error) {
	cur, err := s.scrape(ctx, "stages", "cairn_consumer_cursor")
	if err != nil {
		return nil, err
	}
	out := map[uint32]uint64{}
	for _, c := range cur {
		if labelValue(c.labels, "consumer") != "ingestion" {
			continue
		}
		p, err := strconv.ParseUint(labelValue(c.labels, "partition"), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("cursor series %s: %w", c.labels, err)
		}
		out[uint32(p)] = uint64(c.value)
	}
	return out, nil
}

// ingestionHeads reads the last offset of every ingestion partition.
func (s *suite) ingestionHeads(ctx context.Context) (map[uint32]uint64, error) {
	c := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.service))
	info, err := c.GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{Workspace: s.probeWorkspace("ingestion", 0)})
	if err != nil {
		return nil, fmt.Errorf("get log info: %w", err)
	}
	out := map[uint32]uint64{}
	for _, p := range info.GetPartitions() {
		out[p.GetPartition()] = p.GetLastOffset()
	}
	return out, nil
}

// settleStages waits until stages has applied the whole ingestion log and
// two reads of its state agree (bounded guard), and returns that state.
func (s *suite) settleStages(ctx context.Context, accounts []string) (snapshot, error) {
	guard, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var (
		prev snapshot
		why  string
	)
	for {
		heads, err := s.ingestionHeads(guard)
		var cur map[uint32]uint64
		if err == nil {
			cur, err = s.stagesCursors(guard)
		}
		switch {
		case err != nil:
			why = err.Error()
		case !equalCursors(heads, cur):
			why = fmt.Sprintf("stages cursors %v, log heads %v", cur, heads)
		default:
			snap, err := s.stagesState(guard, accounts)
			if err == nil && prev != nil && len(prev.diff(snap, 1, all)) == 0 {
				return snap, nil
			}
			if err != nil {
				why = err.Error()
			} else {
				why, prev = "state still changing", snap
			}
		}
		select {
		case <-guard.Done():
			return nil, fmt.Errorf("stages did not settle within the guard: %s", why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func equalCursors(heads, cur map[uint32]uint64) bool {
	if len(heads) != partitions || len(cur) != partitions {
		return false
	}
	for p, h := range heads {
		if cur[p] != h {
			return false
		}
	}
	return true
}

// stagesState is stages' part of derivedState: every account's stage,
// entry time and full history.
func (s *suite) stagesState(ctx context.Context, accounts []string) (snapshot, error) {
	st := stagesv1.NewStagesServiceClient(s.conn("stages", s.keys.read))
	snap := snapshot{}
	for _, a := range accounts {
		j, err := st.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: a})
		switch {
		case status.Code(err) == codes.NotFound:
			snap["stages/"+a] = "not found"
			continue
		case err != nil:
			return nil, fmt.Errorf("get journey of %s: %w", a, err)
		}
		var b strings.Builder
		jr := j.GetJourney()
		fmt.Fprintf(&b, "stage=%s entered=%s", jr.GetStage(), jr.GetEnteredAt().AsTime().Format(time.RFC3339Nano))
		for _, tr := range jr.GetHistory() {
			fmt.Fprintf(&b, " | %s->%s@%s by %s/%s", tr.GetFromStage(), tr.GetToStage(), tr.GetAt().AsTime().Format(time.RFC3339Nano), tr.GetCause(), tr.GetTriggerMessageId())
		}
		snap["stages/"+a] = b.String()
	}
	return snap, nil
}
