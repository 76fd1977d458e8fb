package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
	"github.com/cairn-dev/cairn/pkg/testport"
)

const (
	crashRounds  = 5
	crashWorkers = 8
	crashBatch   = 50
	// batchesBeforeKill is how many acknowledged batches a round waits for
	// before SIGKILL, so every round kills the process under load.
	batchesBeforeKill = 30
)

// TestCrashRecovery runs the real binary on a real bbolt file, kills it with
// SIGKILL under concurrent load several times, and then checks through
// Subscribe that every acknowledged event is in the log exactly once, that no
// event is there twice (batches cut off by a kill are resent after the
// restart and must be deduplicated), and that every record decodes.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn-ingestion")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	keys, err := auth.LoadKeyring(filepath.Join(data, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeTok, err := keys.Create("w", auth.RoleWrite)
	if err != nil {
		t.Fatal(err)
	}
	serviceTok, err := keys.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}
	addr := testport.Addr(t)

	acked := map[string]bool{}
	var unacked []*ingestionv1.IngestRequest
	for round := range crashRounds {
		cmd := startService(t, bin, addr, data)
		conn := dial(t, addr, writeTok)
		client := ingestionv1.NewIngestionServiceClient(conn)
		streamtest.WaitServing(t, conn)

		// Batches whose answer was lost in the last kill: they may or may
		// not be durable, and resending them must not log anything twice.
		for _, req := range unacked {
			resp, err := client.Ingest(context.Background(), req)
			if err != nil {
				t.Fatalf("round %d: resend: %v", round, err)
			}
			markAcked(t, acked, req, resp)
		}
		unacked = nil

		var (
			mu       sync.Mutex
			wg       sync.WaitGroup
			progress = make(chan struct{}, batchesBeforeKill*crashWorkers)
			stop     = make(chan struct{})
		)
		for w := range crashWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 0; ; seq++ {
					req := &ingestionv1.IngestRequest{}
					for i := range crashBatch {
						req.Events = append(req.Events, &ingestionv1.Event{
							Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: fmt.Sprintf("r%d-w%d-s%d-e%d", round, w, seq, i),
							UserId: fmt.Sprint("u", i%7), Event: "report_created", Context: crashGroup[i%len(crashGroup)],
						})
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					resp, err := client.Ingest(ctx, req)
					cancel()
					mu.Lock()
					if err != nil {
						unacked = append(unacked, req)
						mu.Unlock()
						return
					}
					markAcked(t, acked, req, resp)
					mu.Unlock()
					select {
					case progress <- struct{}{}:
					case <-stop:
						return
					}
				}
			}()
		}
		for range batchesBeforeKill {
			<-progress
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
		_ = conn.Close()
		t.Logf("round %d: %d events acknowledged so far, %d batches cut off", round, len(acked), len(unacked))
	}

	cmd := startService(t, bin, addr, data)
	conn := dial(t, addr, writeTok)
	streamtest.WaitServing(t, conn)
	client := ingestionv1.NewIngestionServiceClient(conn)
	for _, req := range unacked {
		resp, err := client.Ingest(context.Background(), req)
		if err != nil {
			t.Fatalf("final resend: %v", err)
		}
		markAcked(t, acked, req, resp)
	}
	_ = conn.Close()

	counts := readLog(t, addr, serviceTok)
	for id := range acked {
		if counts[id] != 1 {
			t.Errorf("acknowledged %s is in the log %d times, want 1", id, counts[id])
		}
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s is in the log %d times", id, n)
		}
	}
	t.Logf("%d acknowledged events checked, %d events in the log", len(acked), len(counts))

	// Index passes ran and were killed mid-way (-index-interval 20ms): every
	// logged event must still be in its account's timeline exactly once.
	timelines := readTimelines(t, addr, serviceTok)
	for id := range counts {
		if timelines[id] != 1 {
			t.Errorf("%s is in the timelines %d times, want 1", id, timelines[id])
		}
	}
	if len(timelines) != len(counts) {
		t.Errorf("timelines hold %d events, the log %d", len(timelines), len(counts))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("graceful shutdown: %v", err)
	}
}

// crashGroup attributes the crash test's events to three accounts, so that
// they get timeline rows.
var crashGroup = func() []*structpb.Struct {
	var out []*structpb.Struct
	for i := range 3 {
		s, err := structpb.NewStruct(map[string]any{"groupId": fmt.Sprint("a", i)})
		if err != nil {
			panic(err)
		}
		out = append(out, s)
	}
	return out
}()

// readTimelines pages through the timelines of crashGroup's accounts and
// counts message ids.
func readTimelines(t *testing.T, addr, serviceTok string) map[string]int {
	t.Helper()
	conn := dial(t, addr, serviceTok)
	defer conn.Close()
	c := ingestionv1.NewIngestionServiceClient(conn)
	counts := map[string]int{}
	for i := range crashGroup {
		token := ""
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resp, err := c.ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{
				Workspace: "w", AccountId: fmt.Sprint("a", i), Page: &commonv1.PageRequest{PageSize: 1000, PageToken: token},
			})
			cancel()
			if err != nil {
				t.Fatalf("ListAccountEvents(a%d): %v", i, err)
			}
			for _, ev := range resp.GetEvents() {
				counts[ev.GetMessageId()]++
			}
			if token = resp.GetPage().GetNextPageToken(); token == "" {
				break
			}
		}
	}
	return counts
}

func markAcked(t *testing.T, acked map[string]bool, req *ingestionv1.IngestRequest, resp *ingestionv1.IngestResponse) {
	t.Helper()
	for i, r := range resp.GetResults() {
		switch r.GetStatus() {
		case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
			acked[req.GetEvents()[i].GetMessageId()] = true
		default:
			t.Errorf("event %s: %v", req.GetEvents()[i].GetMessageId(), r)
		}
	}
}

func startService(t *testing.T, bin, addr, data string) *exec.Cmd {
	t.Helper()
	// Frequent index passes, so that kills land in the middle of some.
	cmd := exec.Command(bin, "-grpc-addr", addr, "-metrics-addr", "", "-data", data, "-partitions", "4", "-index-interval", "20ms")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func dial(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.Bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// readLog reads every partition up to its head through Subscribe and counts
// message ids.
func readLog(t *testing.T, addr, serviceTok string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	eachRecord(t, addr, serviceTok, func(p uint32, r *ingestionv1.LogRecord) {
		ev := r.GetEvent()
		if ev == nil || ev.GetWorkspace() != "w" || ev.GetMessageId() == "" || ev.GetTimestamp() == nil {
			t.Errorf("partition %d offset %d: malformed record %v", p, r.GetOffset(), r)
			return
		}
		counts[ev.GetMessageId()]++
	})
	return counts
}

// eachRecord reads every partition of workspace w's log from its start up
// to its head through Subscribe, checks that offsets increase, and calls fn
// for each record.
func eachRecord(t *testing.T, addr, serviceTok string, fn func(p uint32, r *ingestionv1.LogRecord)) {
	t.Helper()
	conn := dial(t, addr, serviceTok)
	defer conn.Close()
	c := ingestionv1.NewIngestionServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := c.GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{Workspace: "w"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.GetPartitions() {
		if p.GetLastOffset() == 0 {
			continue
		}
		sctx, scancel := context.WithCancel(ctx)
		s, err := c.Subscribe(sctx, &ingestionv1.SubscribeRequest{Partition: p.GetPartition(), FromOffset: 1})
		if err != nil {
			t.Fatal(err)
		}
		var last uint64
		for last < p.GetLastOffset() {
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("partition %d: Recv: %v", p.GetPartition(), err)
			}
			for _, r := range resp.GetRecords() {
				if r.GetOffset() <= last {
					t.Errorf("partition %d: offset %d after %d", p.GetPartition(), r.GetOffset(), last)
				}
				last = r.GetOffset()
				fn(p.GetPartition(), r)
			}
			if len(resp.GetRecords()) == 0 && resp.GetHeadOffset() <= last {
				break // the head is a deleted record
			}
		}
		scancel()
	}
}
