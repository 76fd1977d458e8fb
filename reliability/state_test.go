package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// signalledPrefix marks routing's risk and renewal handoffs. They are made
// from health signals, and whether one goes to the account's AE too (or is
// skipped because one is open) depends on the order in which routing reads
// three independent logs (ingestion, stages, health): no global order
// exists between them, so these lines are reported, not required equal.
const signalledPrefix = "routing-signalled/"

// snapshot is the deterministic part of the derived state, one canonical
// line per account and service, so that two runs can be diffed line by line.
type snapshot map[string]string

// diff lists the keys (of those keep accepts) whose values differ, at most
// max of them.
func (a snapshot) diff(b snapshot, max int, keep func(key string) bool) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if keep(k) && a[k] != b[k] {
			out = append(out, fmt.Sprintf("%s:\n   want %q\n   got  %q", k, a[k], b[k]))
		}
	}
	sort.Strings(out)
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... and %d more", len(out)-max))
	}
	return out
}

// all keeps every key of a snapshot.
func all(string) bool { return true }

// required keeps the keys that must be equal between runs.
func required(k string) bool { return !strings.HasPrefix(k, signalledPrefix) }

// signalled keeps the order-dependent routing lines.
func signalled(k string) bool { return strings.HasPrefix(k, signalledPrefix) }

// derivedState reads what stages, health and routing hold for every
// account, leaving out what is legitimately wall-clock: creation and
// computation times, time in stage, ids, trends and SLA clocks.
func (s *suite) derivedState(ctx context.Context, accounts []string) (snapshot, error) {
	snap := snapshot{}
	for _, a := range accounts {
		// Each account is read from the replica that owns it, with its
		// workspace's key.
		read := s.keysOf(s.workspaceOf(a)).read
		st := stagesv1.NewStagesServiceClient(s.conn(s.ownerOf("stages", a), read))
		he := healthv1.NewHealthServiceClient(s.conn(s.ownerOf("health", a), read))
		ro := routingv1.NewRoutingServiceClient(s.conn(s.ownerOf("routing", a), read))
		j, err := st.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: a})
		switch {
		case status.Code(err) == codes.NotFound:
			snap["stages/"+a] = "not found"
		case err != nil:
			return nil, fmt.Errorf("get journey of %s: %w", a, err)
		default:
			var b strings.Builder
			jr := j.GetJourney()
			fmt.Fprintf(&b, "stage=%s entered=%s", jr.GetStage(), jr.GetEnteredAt().AsTime().Format(time.RFC3339Nano))
			for _, tr := range jr.GetHistory() {
				fmt.Fprintf(&b, " | %s->%s@%s by %s/%s", tr.GetFromStage(), tr.GetToStage(), tr.GetAt().AsTime().Format(time.RFC3339Nano), tr.GetCause(), tr.GetTriggerMessageId())
			}
			snap["stages/"+a] = b.String()
		}
		h, err := he.GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: a})
		switch {
		case status.Code(err) == codes.NotFound:
			snap["health/"+a] = "not found"
		case err != nil:
			return nil, fmt.Errorf("get health of %s: %w", a, err)
		default:
			hh := h.GetHealth()
			var b strings.Builder
			fmt.Fprintf(&b, "score=%.4f band=%s stage=%s arr=%.2f model=%s/%d", hh.GetScore(), hh.GetBand(), hh.GetStage(), hh.GetArr(), hh.GetModelId(), hh.GetModelVersion())
			for _, c := range hh.GetComponents() {
				fmt.Fprintf(&b, " | %s raw=%.4f pts=%.4f err=%q", c.GetName(), c.GetRawValue(), c.GetPoints(), c.GetError())
			}
			var sigs []string
			for _, sg := range hh.GetOpenSignals() {
				sigs = append(sigs, sg.GetKind().String()+"/"+sg.GetReason())
			}
			sort.Strings(sigs)
			fmt.Fprintf(&b, " | open signals %v", sigs)
			snap["health/"+a] = b.String()
		}
		var lines, signalled []string
		req := &routingv1.ListAssignmentsRequest{AccountId: a, Page: &commonv1.PageRequest{PageSize: 1000}}
		for {
			r, err := ro.ListAssignments(ctx, req)
			if err != nil {
				return nil, fmt.Errorf("list assignments of %s: %w", a, err)
			}
			for _, as := range r.GetAssignments() {
				line := fmt.Sprintf("%s owner=%s lead=%s", as.GetType(), as.GetOwnerId(), as.GetLead().GetLeadId())
				switch as.GetType() {
				case routingv1.HandoffType_HANDOFF_TYPE_RISK, routingv1.HandoffType_HANDOFF_TYPE_RENEWAL:
					signalled = append(signalled, line)
				default:
					lines = append(lines, line)
				}
			}
			if r.GetPage().GetNextPageToken() == "" {
				break
			}
			req.Page.PageToken = r.GetPage().GetNextPageToken()
		}
		sort.Strings(lines)
		sort.Strings(signalled)
		snap["routing/"+a] = strings.Join(lines, "; ")
		snap[signalledPrefix+a] = strings.Join(signalled, "; ")
	}
	return snap, nil
}

// ingestedIDs reads the whole ingestion log (of every ingestion replica)
// with the service key and counts how often each message id appears as an
// event record.
func (s *suite) ingestedIDs(ctx context.Context) (map[string]int, error) {
	ids := map[string]int{}
	for k, name := range s.replicaNames("ingestion") {
		c := ingestionv1.NewIngestionServiceClient(s.conn(name, s.keys.service))
		info, err := c.GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{Workspace: s.probeWorkspace("ingestion", k)})
		if err != nil {
			return nil, fmt.Errorf("get log info of %s: %w", name, err)
		}
		for _, p := range info.GetPartitions() {
			if p.GetLastOffset() == 0 {
				continue
			}
			if err := readPartition(ctx, c, p.GetPartition(), p.GetLastOffset(), ids); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return ids, nil
}

func readPartition(ctx context.Context, c ingestionv1.IngestionServiceClient, p uint32, last uint64, ids map[string]int) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Subscribe(sctx, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: 1})
	if err != nil {
		return fmt.Errorf("subscribe to partition %d: %w", p, err)
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("partition %d: stream ended before offset %d", p, last)
		}
		if err != nil {
			return fmt.Errorf("read partition %d: %w", p, err)
		}
		for _, rec := range r.GetRecords() {
			if ev := rec.GetEvent(); ev != nil && !ev.GetReattributed() {
				ids[ev.GetMessageId()]++
			}
			if rec.GetOffset() >= last {
				return nil
			}
		}
	}
}

// caughtUp reports whether every downstream consumer has applied every
// upstream record: each cairn_consumer_lag series is 0, every consumer of
// each ingestion replica's log ("ingestion", "ingestion-1", ...) has a
// series for every partition it follows, and those consumers'
// cairn_consumer_cursor equals that replica's head of the partition.
func (s *suite) caughtUp(ctx context.Context) (bool, string, error) {
	// heads[consumer][partition] is the head of the ingestion replica that
	// consumer follows.
	heads := map[string]map[string]float64{}
	nIngestion := len(s.replicaNames("ingestion"))
	for k, name := range s.replicaNames("ingestion") {
		c := ingestionv1.NewIngestionServiceClient(s.conn(name, s.keys.service))
		info, err := c.GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{Workspace: s.probeWorkspace("ingestion", k)})
		if err != nil {
			return false, "", fmt.Errorf("get log info of %s: %w", name, err)
		}
		h := map[string]float64{}
		for _, p := range info.GetPartitions() {
			h[strconv.FormatUint(uint64(p.GetPartition()), 10)] = float64(p.GetLastOffset())
		}
		heads[stream.ReplicaName("ingestion", k)] = h
	}
	for _, svc := range []string{"stages", "health", "routing"} {
		// A stages or health replica follows the ingestion partitions it
		// owns, so together they cover every partition once; a routing
		// replica (split by workspace) follows all of them.
		seen := 0
		for _, name := range s.replicaNames(svc) {
			lag, err := s.scrape(ctx, name, "cairn_consumer_lag")
			if err != nil {
				return false, "", err
			}
			for _, l := range lag {
				if l.value != 0 {
					return false, fmt.Sprintf("%s lag%s = %v", name, l.labels, l.value), nil
				}
			}
			cursors, err := s.scrape(ctx, name, "cairn_consumer_cursor")
			if err != nil {
				return false, "", err
			}
			for _, cu := range cursors {
				h, ok := heads[labelValue(cu.labels, "consumer")]
				if !ok {
					continue
				}
				part := labelValue(cu.labels, "partition")
				if cu.value != h[part] {
					return false, fmt.Sprintf("%s %s cursor partition %s = %v, head %v", name, labelValue(cu.labels, "consumer"), part, cu.value, h[part]), nil
				}
				seen++
			}
		}
		want := partitions * nIngestion
		if svc == "routing" {
			want *= len(s.replicaNames(svc))
		}
		if seen != want {
			return false, fmt.Sprintf("%s reports ingestion cursors for %d of %d (replica, partition) pairs", svc, seen, want), nil
		}
	}
	return true, "", nil
}

func labelValue(labels, name string) string {
	i := strings.Index(labels, name+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

// settle waits until the consumers have caught up and two reads of the
// derived state agree (stages and health also feed routing and health, so
// the ingestion cursors alone do not prove those hops are done), within a
// bounded guard; it returns the settled state.
func (s *suite) settle(ctx context.Context, accounts []string) (snapshot, error) {
	guard, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var (
		prev snapshot
		why  string
	)
	for {
		ok, w, err := s.caughtUp(guard)
		if err == nil && ok {
			cur, err := s.derivedState(guard, accounts)
			if err == nil && prev != nil && len(prev.diff(cur, 1, all)) == 0 {
				return cur, nil
			}
			if err != nil {
				why = err.Error()
			} else {
				why, prev = "state still changing", cur
			}
		} else if err != nil {
			why = err.Error()
		} else {
			why = w
		}
		select {
		case <-guard.Done():
			return nil, fmt.Errorf("consumers did not settle within the guard: %s", why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
