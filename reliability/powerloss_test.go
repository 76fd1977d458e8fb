package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/reliability/internal/lazyfs"
)

// Power-loss test knobs. The defaults are the short version that runs in
// `go test` (and make test); the long version raises them, e.g.
//
//	CAIRN_POWERLOSS_CUTS=20 CAIRN_POWERLOSS_ACCOUNTS=150 go test -count=1 -run TestPowerLoss -v .
const (
	envPowerCuts     = "CAIRN_POWERLOSS_CUTS"     // power cuts in the run (default 3)
	envPowerSeed     = "CAIRN_POWERLOSS_SEED"     // seed of the cut plan (default 2026)
	envPowerAccounts = "CAIRN_POWERLOSS_ACCOUNTS" // workload accounts (default 50)
	envPowerRate     = "CAIRN_POWERLOSS_RATE"     // offered events/s (default 500)
)

// powerBatch is the batch size: small, so that the workload has many
// batches for cuts to land in.
const powerBatch = 10

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

// powerCounts are the figures of one run, summed over its cuts.
type powerCounts struct {
	cuts          int
	ackedAtCut    int // acknowledged events that had to survive a cut, summed over cuts
	lost, doubled int // of those, missing from or doubled in the log after the restart
	pagesDropped  int // unsynced pages the cuts dropped
	midWrite      int // cuts that dropped any: they landed between a write and its fsync
	cursorLost    int // stages cursors (partition × cut) behind what was committed before the cut
	ahead         int // stages cursors past the durable ingestion head after a cut
	checkFailed   int // bbolt check failures after a cut
	acked, stored int // at the end of the run: distinct events acknowledged, distinct ids in the log
	endDoubled    int // ids in the log more than once at the end
}

// TestPowerLoss runs ingestion and stages with their data directory on a
// lazyfs mount (reliability/internal/lazyfs): writes not yet fsynced live
// only in memory. Under paced load it cuts the power at seeded random
// moments (drops every unsynced write, SIGKILLs both processes), checks
// the files on the "disk", remounts and restarts them, and finally
// requires that nothing acknowledged was lost or doubled and that stages
// ends equal to a run that never lost power. A control run with stages on
// -no-sync must see committed cursors go back: proof that the cuts bite.
func TestPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	if why := lazyfs.Available(); why != "" {
		t.Skip("power-loss test: " + why)
	}
	cuts := envInt(t, envPowerCuts, 3)
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
	if cuts > nBatches/2 {
		t.Fatalf("%d cuts in %d batches: raise %s", cuts, nBatches, envPowerAccounts)
	}

	var want snapshot
	t.Run("undisturbed", func(t *testing.T) {
		want, _ = powerRun(t, events, accounts, rate, nil, false)
		staged := 0
		for _, v := range want {
			if v != "not found" {
				staged++
			}
		}
		t.Logf("baseline: %d of %d accounts staged", staged, len(accounts))
		if staged == 0 {
			t.Fatal("baseline stages nothing: the comparison would prove nothing")
		}
	})
	if want == nil {
		t.FailNow()
	}

	t.Run("power cuts", func(t *testing.T) {
		got, n := powerRun(t, events, accounts, rate, cutPlan(cutSeed, cuts, nBatches, rate), false)
		t.Logf("%d cuts, %d of them between a write and its fsync (%d unsynced pages dropped): %d acked events had to survive a cut (summed), %d lost, %d doubled; "+
			"%d committed stages cursors went back, %d ran ahead of the log, %d bbolt checks failed; "+
			"end: %d acked, %d stored, %d doubled",
			n.cuts, n.midWrite, n.pagesDropped, n.ackedAtCut, n.lost, n.doubled, n.cursorLost, n.ahead, n.checkFailed, n.acked, n.stored, n.endDoubled)
		if n.lost+n.doubled+n.cursorLost+n.ahead+n.checkFailed+n.endDoubled > 0 || n.acked != n.stored {
			t.Errorf("power cuts lost or broke acknowledged state (see above)")
		}
		if got != nil {
			if d := want.diff(got, 10, all); len(d) > 0 {
				t.Errorf("stages after power cuts differs from the undisturbed run:\n%s", strings.Join(d, "\n"))
			}
		}
	})

	t.Run("control: stages without fsync", func(t *testing.T) {
		// Only stages reads CAIRN_NO_SYNC (-no-sync): its commits stay in
		// lazyfs's memory until bbolt grows the file, so a cut must take
		// committed cursors back. Late cuts: stages has committed a lot.
		t.Setenv("CAIRN_NO_SYNC", "1")
		plan := map[int]time.Duration{nBatches / 2: 0, 3 * nBatches / 4: 0}
		got, n := powerRun(t, events, accounts, rate, plan, true)
		t.Logf("control, %d cuts (%d unsynced pages dropped): %d committed stages cursors went back, %d bbolt checks failed; acked events lost %d",
			n.cuts, n.pagesDropped, n.cursorLost, n.checkFailed, n.lost)
		if n.cursorLost == 0 && n.checkFailed == 0 {
			t.Errorf("stages ran without fsync and %d power cuts lost none of its committed cursors: the harness does not bite", n.cuts)
		}
		// Losing cursors with the state they commit is consistent: stages
		// re-reads the log and still ends where the baseline did.
		if got != nil {
			if d := want.diff(got, 10, all); len(d) > 0 {
				t.Logf("stages without fsync after cuts differs from the undisturbed run:\n%s", strings.Join(d, "\n"))
			}
		}
	})
}

// cutPlan picks, with the seed, the batches during which the power is cut
// and how long after the batch is sent (within two batch intervals).
func cutPlan(seed uint64, cuts, nBatches, rate int) map[int]time.Duration {
	rng := rand.New(rand.NewPCG(seed, 0x9c))
	interval := time.Duration(powerBatch) * time.Second / time.Duration(rate)
	plan := map[int]time.Duration{}
	for len(plan) < cuts {
		plan[2+rng.IntN(nBatches-2)] = time.Duration(rng.Int64N(int64(2 * interval)))
	}
	return plan
}

// powerRun starts ingestion and stages on a lazyfs mount, sends the
// workload paced at rate events/s, cuts the power as planned, and returns
// stages' settled state and the counts. control makes losses expected: it
// counts them without failing.
func powerRun(t *testing.T, events []*ingestionv1.Event, accounts []string, rate int, plan map[int]time.Duration, control bool) (snapshot, powerCounts) {
	t.Helper()
	backing, mnt := t.TempDir(), t.TempDir()
	var (
		fsMu sync.Mutex
		lfs  *lazyfs.FS
	)
	mount := func() error {
		l, err := lazyfs.Mount(backing, mnt)
		if err != nil {
			return err
		}
		fsMu.Lock()
		lfs = l
		fsMu.Unlock()
		return nil
	}
	if err := mount(); err != nil {
		t.Skipf("power-loss test: cannot mount FUSE here: %v", err)
	}
	// Registered before the suite's cleanup, so it runs after the
	// processes are stopped.
	t.Cleanup(func() {
		fsMu.Lock()
		defer fsMu.Unlock()
		if err := lfs.Unmount(); err != nil {
			t.Error(err)
		}
	})
	s := newSuite(t)
	s.dataDirs = map[string]string{"ingestion": mnt, "stages": mnt}
	s.start("ingestion")
	s.start("stages")
	ctx := t.Context()
	ic := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))

	var (
		n       powerCounts
		ackMu   sync.Mutex
		acked   = map[string]bool{}
		failf   = t.Errorf
		nBatch  = (len(events) + powerBatch - 1) / powerBatch
		tick    = time.Duration(powerBatch) * time.Second / time.Duration(rate)
		started = time.Now()
	)
	if control {
		failf = t.Logf
	}
	cut := func(batch int, delay time.Duration) {
		// The power goes at once: first the data that was not synced,
		// then the processes (SIGKILL), then the mount.
		committed, err := s.stagesCursors(ctx)
		if err != nil {
			t.Errorf("cut at batch %d: read stages cursors: %v", batch, err)
			return
		}
		ackMu.Lock()
		mustHave := make([]string, 0, len(acked))
		for id := range acked {
			mustHave = append(mustHave, id)
		}
		ackMu.Unlock()
		fsMu.Lock()
		l := lfs
		fsMu.Unlock()
		lost := l.Cut()
		s.kill("ingestion")
		s.kill("stages")
		if err := l.Unmount(); err != nil {
			t.Errorf("cut at batch %d: %v", batch, err)
			return
		}
		n.cuts++
		n.pagesDropped += lost.Pages
		if lost.Pages > 0 {
			n.midWrite++
		}

		// The disk after the cut: both files pass bbolt's check, and
		// every cursor stages had committed is there.
		for _, f := range []string{"ingestion.db", "stages.db"} {
			if err := store.Check(filepath.Join(backing, f)); err != nil {
				n.checkFailed++
				failf("cut at batch %d: %v", batch, err)
			}
		}
		durable, err := durableCursors(filepath.Join(backing, "stages.db"))
		if err != nil {
			n.checkFailed++
			failf("cut at batch %d: %v", batch, err)
		}
		for p, c := range committed {
			if durable[p] < c {
				n.cursorLost++
				failf("cut at batch %d: stages committed partition %d up to %d, the disk holds %d", batch, p, c, durable[p])
			}
		}

		if err := mount(); err != nil {
			t.Errorf("remount after the cut at batch %d: %v", batch, err)
			return
		}
		s.start("ingestion")
		s.start("stages")
		heads, err := s.ingestionHeads(ctx)
		if err != nil {
			t.Errorf("after the cut at batch %d: %v", batch, err)
			return
		}
		for p, c := range durable {
			if c > heads[p] {
				n.ahead++
				t.Errorf("after the cut at batch %d: stages applied partition %d up to %d, the log ends at %d", batch, p, c, heads[p])
			}
		}
		ids, err := s.ingestedIDs(ctx)
		if err != nil {
			t.Errorf("after the cut at batch %d: %v", batch, err)
			return
		}
		var missing, doubled int
		for _, id := range mustHave {
			switch ids[id] {
			case 0:
				missing++
			case 1:
			default:
				doubled++
			}
		}
		n.ackedAtCut += len(mustHave)
		n.lost += missing
		n.doubled += doubled
		if missing+doubled > 0 {
			t.Errorf("cut at batch %d: of %d acknowledged events %d are not in the log and %d are in it twice", batch, len(mustHave), missing, doubled)
		}
		t.Logf("cut at batch %d (+%v): dropped %d unsynced pages of %d files; %d acked events: %d lost, %d doubled; stages cursors committed %v, on disk %v, log heads %v",
			batch, delay.Round(time.Millisecond), lost.Pages, lost.Files, len(mustHave), missing, doubled, committed, durable, heads)
	}

	for i := range nBatch {
		// Paced: batch i is due at i ticks after the start (open loop
		// within the limits of one sequential client).
		if wait := time.Until(started.Add(time.Duration(i) * tick)); wait > 0 {
			time.Sleep(wait)
		}
		batch := events[i*powerBatch : min((i+1)*powerBatch, len(events))]
		var done chan struct{}
		if delay, ok := plan[i]; ok {
			done = make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(delay) // a seeded point while the batch is in flight
				cut(i, delay)
			}()
		}
		resp, _, err := sendBatch(ctx, ic, batch)
		if done != nil {
			<-done
		}
		if t.Failed() && !control {
			t.FailNow()
		}
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		ackMu.Lock()
		for _, r := range resp.GetResults() {
			switch r.GetStatus() {
			case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
				acked[r.GetMessageId()] = true
			default:
				t.Fatalf("batch %d event %s: %v %s", i, r.GetMessageId(), r.GetStatus(), r.GetReason())
			}
		}
		ackMu.Unlock()
	}

	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.acked, n.stored = len(acked), len(ids)
	for id, c := range ids {
		if c > 1 {
			n.endDoubled++
			t.Errorf("message %s is in the log %d times", id, c)
		}
	}
	for id := range acked {
		if ids[id] == 0 {
			t.Errorf("acknowledged %s is not in the log", id)
		}
	}
	if len(acked) != len(events) {
		t.Errorf("acknowledged %d distinct events, want %d", len(acked), len(events))
	}
	got, err := s.settleStages(ctx, accounts)
	if err != nil {
		t.Fatal(err)
	}
	// Stop both and check the files as they are on the disk.
	s.stop("stages")
	s.stop("ingestion")
	for _, f := range []string{"ingestion.db", "stages.db"} {
		if err := store.Check(filepath.Join(backing, f)); err != nil {
			t.Errorf("at the end: %v", err)
		}
	}
	return got, n
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

// durableCursors reads stages' ingestion cursors from its file on the
// disk (pkg/stream keeps them in bucket _cursors as "<name>/<partition>").
func durableCursors(path string) (map[uint32]uint64, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer db.Close()
	out := map[uint32]uint64{}
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("_cursors"))
		if b == nil {
			return nil
		}
		for p := uint32(0); p < partitions; p++ {
			out[p] = store.ParseU64(b.Get([]byte("ingestion/" + strconv.Itoa(int(p)))))
		}
		return nil
	})
	return out, err
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
