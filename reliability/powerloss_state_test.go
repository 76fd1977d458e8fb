package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// powerUpstreams are the logs each stateful service consumes, by consumer
// name (the key prefix of its cursors in bucket _cursors and the consumer
// label of cairn_consumer_cursor); plays is run by the power-loss test
// only, the other suites run no plays service.
var powerUpstreams = map[string][]string{
	"stages":  {"ingestion"},
	"health":  {"ingestion", "stages"},
	"routing": {"ingestion", "stages", "health"},
	"plays":   {"stages", "health", "routing"},
}

// logNames names the log each producing service keeps in its file.
var logNames = map[string]string{"ingestion": "events", "stages": "stages", "health": "health", "routing": "routing"}

// playsYAML fires plays whose outcome depends on one log each, in that
// log's order, so that the firings and tasks of a run do not depend on how
// plays interleaves its three upstreams: no conditions over the account
// (its view of the other logs), no cooldown, and tasks for a pool, whose
// due date counts calendar time from the record (a role's owner and the
// owner's business hours come from routing's directory, read by plays in
// the background on its own schedule).
const playsYAML = `plays:
  - id: stage-entered
    name: Stage entered
    on: [stage.entered]
    actions:
      - task: {title: "Check in on the new stage", owner: "pool:cs-pool", due: 2d}
  - id: handoff
    name: Handoff assigned
    on: [assignment.created]
    when: record.type in ["mql", "sql", "closed_won"]
    actions:
      - task: {title: "Work the handoff", owner: "pool:cs-pool", due: 4h}
  - id: band
    name: Band changed
    on: [health.band_changed]
    actions:
      - task: {title: "Look at the new band", owner: "pool:cs-pool", due: 1d}
`

var (
	playsBuild    sync.Once
	playsBuildErr error
)

// buildPlays adds cairn-plays to the suite's binaries (TestMain builds
// the services the other suites run; only this test runs plays).
func buildPlays(t *testing.T) {
	t.Helper()
	playsBuild.Do(func() {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "cairn-plays"), "github.com/cairn-dev/cairn/services/plays").CombinedOutput()
		if err != nil {
			playsBuildErr = fmt.Errorf("go build plays: %w\n%s", err, out)
		}
	})
	if playsBuildErr != nil {
		t.Fatal(playsBuildErr)
	}
}

// addPlays gives the suite a plays process reading stages, health and
// routing, as cmd/cairn's supervisor wires it.
func (s *suite) addPlays(t *testing.T) {
	t.Helper()
	buildPlays(t)
	s.grpc["plays"], s.metrics["plays"] = testport.Addr(t), testport.Addr(t)
	if s.extraArgs == nil {
		s.extraArgs = map[string][]string{}
	}
	s.extraArgs["plays"] = []string{"-stages-addr", s.grpc["stages"], "-health-addr", s.grpc["health"], "-routing-addr", s.grpc["routing"]}
	// The suite's cleanup shows the other services' log tails.
	t.Cleanup(func() {
		if tail := s.logTail("plays"); t.Failed() && tail != "" {
			t.Logf("plays log tail:\n%s", tail)
		}
	})
}

// applyPlays stores playsYAML in the suite's workspace.
func (s *suite) applyPlays(ctx context.Context) error {
	c := playsv1.NewPlaysServiceClient(s.conn("plays", s.keys.admin))
	if _, err := c.ApplyPlays(ctx, &playsv1.ApplyPlaysRequest{Yaml: playsYAML}); err != nil {
		return fmt.Errorf("apply plays: %w", err)
	}
	return nil
}

// playsState is plays' part of the state: per account, every firing (play,
// trigger, record summary and time, held) with the tasks it made (title,
// owner, state, start and due). Firing and task ids are left out: they
// are one sequence over the three logs plays interleaves.
func (s *suite) playsState(ctx context.Context) (snapshot, error) {
	c := playsv1.NewPlaysServiceClient(s.conn("plays", s.keys.read))
	tasks := map[string]*playsv1.Task{}
	treq := &playsv1.ListTasksRequest{Page: &commonv1.PageRequest{PageSize: 1000}}
	for {
		r, err := c.ListTasks(ctx, treq)
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		for _, k := range r.GetTasks() {
			tasks[k.GetTaskId()] = k
		}
		if r.GetPage().GetNextPageToken() == "" {
			break
		}
		treq.Page.PageToken = r.GetPage().GetNextPageToken()
	}
	lines := map[string][]string{}
	used := 0
	freq := &playsv1.ListFiringsRequest{Page: &commonv1.PageRequest{PageSize: 1000}}
	for {
		r, err := c.ListFirings(ctx, freq)
		if err != nil {
			return nil, fmt.Errorf("list firings: %w", err)
		}
		for _, f := range r.GetFirings() {
			var b strings.Builder
			fmt.Fprintf(&b, "%s on %s@%s %q held=%q", f.GetPlayId(), f.GetTrigger(), f.GetAt().AsTime().Format(time.RFC3339Nano), f.GetRecord(), f.GetHeld())
			for _, id := range f.GetTaskIds() {
				k := tasks[id]
				if k == nil {
					fmt.Fprintf(&b, " [task missing]")
					continue
				}
				used++
				fmt.Fprintf(&b, " [%s %s/%s %s starts=%s due=%s]", k.GetTitle(), k.GetOwnerRole(), k.GetOwnerId(), k.GetState(),
					k.GetStartsAt().AsTime().Format(time.RFC3339Nano), k.GetDueAt().AsTime().Format(time.RFC3339Nano))
			}
			lines[f.GetAccountId()] = append(lines[f.GetAccountId()], b.String())
		}
		if r.GetPage().GetNextPageToken() == "" {
			break
		}
		freq.Page.PageToken = r.GetPage().GetNextPageToken()
	}
	snap := snapshot{}
	for a, l := range lines {
		sort.Strings(l)
		snap["plays/"+a] = strings.Join(l, "\n    ")
	}
	if used != len(tasks) {
		snap["plays-orphans"] = fmt.Sprintf("%d tasks of no firing", len(tasks)-used)
	}
	return snap, nil
}

// playsCaughtUp reports whether plays follows all 24 upstream partitions
// with no lag.
func (s *suite) playsCaughtUp(ctx context.Context) (bool, string, error) {
	lag, err := s.scrape(ctx, "plays", "cairn_consumer_lag")
	if err != nil {
		return false, "", err
	}
	if want := partitions * len(powerUpstreams["plays"]); len(lag) != want {
		return false, fmt.Sprintf("plays reports lag for %d of %d partitions", len(lag), want), nil
	}
	for _, l := range lag {
		if l.value != 0 {
			return false, fmt.Sprintf("plays lag%s = %v", l.labels, l.value), nil
		}
	}
	return true, "", nil
}

// settleAll is settle with plays: every consumer caught up and two reads
// of stages, health, routing and plays agreeing, within a bounded guard.
func (s *suite) settleAll(ctx context.Context, accounts []string) (snapshot, error) {
	guard, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var (
		prev snapshot
		why  string
	)
	read := func() (snapshot, error) {
		snap, err := s.derivedState(guard, accounts)
		if err != nil {
			return nil, err
		}
		ps, err := s.playsState(guard)
		if err != nil {
			return nil, err
		}
		for k, v := range ps {
			snap[k] = v
		}
		return snap, nil
	}
	for {
		ok, w, err := s.caughtUp(guard)
		if err == nil && ok {
			ok, w, err = s.playsCaughtUp(guard)
		}
		switch {
		case err != nil:
			why = err.Error()
		case !ok:
			why = w
		default:
			cur, err := read()
			if err == nil && prev != nil && len(prev.diff(cur, 1, all)) == 0 {
				return cur, nil
			}
			if err != nil {
				why = err.Error()
			} else {
				why, prev = "state still changing", cur
			}
		}
		select {
		case <-guard.Done():
			return nil, fmt.Errorf("consumers did not settle within the guard: %s", why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// cursors is consumer name → partition → offset.
type cursors map[string]map[uint32]uint64

// committedCursors reads every cursor a process has committed from its
// /metrics (cairn_consumer_cursor moves only after the commit returned).
func (s *suite) committedCursors(ctx context.Context, name string) (cursors, error) {
	cur, err := s.scrape(ctx, name, "cairn_consumer_cursor")
	if err != nil {
		return nil, err
	}
	out := cursors{}
	for _, c := range cur {
		p, err := strconv.ParseUint(labelValue(c.labels, "partition"), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s cursor series %s: %w", name, c.labels, err)
		}
		consumer := labelValue(c.labels, "consumer")
		if out[consumer] == nil {
			out[consumer] = map[uint32]uint64{}
		}
		out[consumer][uint32(p)] = uint64(c.value)
	}
	return out, nil
}

// onDisk is what a service's bbolt file holds durably: its cursors
// (bucket _cursors, "<consumer>/<partition>") and its log's heads.
type onDisk struct {
	cursors cursors
	heads   map[uint32]uint64
}

// readDisk opens a service's file on the backing directory read-only.
func readDisk(path, logName string) (onDisk, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return onDisk{}, fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	defer db.Close()
	d := onDisk{cursors: cursors{}, heads: map[uint32]uint64{}}
	err = db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("_cursors")); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				i := strings.LastIndexByte(string(k), '/')
				p, err := strconv.ParseUint(string(k[i+1:]), 10, 32)
				if i < 0 || err != nil {
					return fmt.Errorf("cursor key %q", k)
				}
				name := string(k[:i])
				if d.cursors[name] == nil {
					d.cursors[name] = map[uint32]uint64{}
				}
				d.cursors[name][uint32(p)] = store.ParseU64(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		if logName == "" {
			return nil
		}
		lb := tx.Bucket([]byte("log"))
		if lb != nil {
			lb = lb.Bucket([]byte(logName))
		}
		for p := uint32(0); p < partitions; p++ {
			if lb == nil {
				d.heads[p] = 0
				continue
			}
			var head uint64
			if pb := lb.Bucket(fmt.Appendf(nil, "p%05d", p)); pb != nil {
				if m := pb.Bucket([]byte("meta")); m != nil {
					head = store.ParseU64(m.Get([]byte("head")))
				}
			}
			d.heads[p] = head
		}
		return nil
	})
	return d, err
}
