package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

// mountTmpfs mounts a tmpfs of the given size on dir, or skips the test
// when that is not possible (not root, no mount permission in a container).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk trouble test: needs root to mount a small tmpfs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("disk trouble test: cannot mount a tmpfs (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// resizeTmpfs gives the mounted tmpfs a new size: the disk gets space back.
func resizeTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resize tmpfs: %v: %s", err, out)
	}
}

// bulkyBatch is n track events of about 2 KB each with unique ids.
func bulkyBatch(prefix string, n int, at time.Time) []*ingestionv1.Event {
	pad := strings.Repeat("x", 2000)
	out := make([]*ingestionv1.Event, n)
	for i := range out {
		out[i] = &ingestionv1.Event{
			Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: fmt.Sprintf("%s-%03d", prefix, i),
			UserId: "disk-user", Event: "report_created",
			Context:    fields(map[string]any{"groupId": fmt.Sprintf("disk-acct-%d", i%20)}),
			Properties: &structpb.Struct{Fields: map[string]*structpb.Value{"pad": structpb.NewStringValue(pad)}},
			Timestamp:  timestamppb.New(at),
		}
	}
	return out
}

// TestDiskFull fills the file system under ingestion's bbolt file: Ingest
// must fail with an error (acknowledging nothing it did not store) and keep
// running; once space returns, the same batches are accepted, every
// acknowledged event is in the log exactly once, and bbolt's consistency
// check passes on the file.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	data := t.TempDir()
	mountTmpfs(t, data, "2m")
	s := newSuite(t)
	s.dataDirs = map[string]string{"ingestion": data}
	// No background index pass: acknowledged events stay staged, so the
	// timeline read below has index rows to write and cannot.
	t.Setenv("CAIRN_INDEX_INTERVAL", "1h")
	s.start("ingestion")
	ctx := t.Context()
	c := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))
	at := time.Now().UTC().Add(-time.Hour)

	acked := map[string]bool{}
	var (
		failed  []*ingestionv1.Event
		failErr error
		sent    int
	)
	for b := 0; b < 100 && failed == nil; b++ {
		batch := bulkyBatch(fmt.Sprintf("disk-%03d", b), 50, at)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := c.Ingest(cctx, &ingestionv1.IngestRequest{Events: batch})
		cancel()
		sent++
		if err != nil {
			failed, failErr = batch, err
			break
		}
		for _, r := range resp.GetResults() {
			if r.GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED {
				t.Fatalf("event %s: %v %s %s", r.GetMessageId(), r.GetStatus(), r.GetField(), r.GetReason())
			}
			acked[r.GetMessageId()] = true
		}
	}
	if failed == nil {
		t.Fatalf("%d batches of about 100 KB fit in a 2 MiB file system: the disk never filled", sent)
	}
	t.Logf("disk full after %d batches (%d events acknowledged): %v", sent, len(acked), failErr)
	// A full disk is not a bug: the caller hears Unavailable, in words,
	// with a delay after which the same batch may succeed.
	st := status.Convert(failErr)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "disk full") {
		t.Fatalf("Ingest on a full disk: %v %q, want Unavailable saying the disk is full", st.Code(), st.Message())
	}
	var retry bool
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			retry = true
		}
	}
	if !retry {
		t.Errorf("Ingest on a full disk carries no RetryInfo: %v", st.Details())
	}
	if msg := status.Convert(failErr).Message(); strings.Contains(msg, data) {
		t.Errorf("error %q leaks the data path", msg)
	}
	// The process survives a failed write and keeps answering.
	if !s.ready(ctx, "ingestion") {
		t.Fatalf("ingestion is not serving after a failed write\n%s", s.logTail("ingestion"))
	}
	// Its status says so in words (and it stays ready: reads are true).
	if body := readyz(t, s.metrics["ingestion"]); !strings.Contains(body, "ready; storage: disk full since ") {
		t.Errorf("/readyz on a full disk: %q, want it to say the disk is full", body)
	}
	// Reads keep working on the full disk: a timeline read serves the
	// index as it stands instead of failing on the index pass it cannot
	// write.
	rc := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.read))
	if _, err := rc.ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: "disk-acct-1"}); err != nil {
		t.Errorf("timeline read on a full disk: %v, want it served", err)
	}

	resizeTmpfs(t, data, "64m")
	guard, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, retries, err := sendBatch(guard, c, failed)
	if err != nil {
		t.Fatalf("Ingest after space returned: %v\n%s", err, s.logTail("ingestion"))
	}
	for _, r := range resp.GetResults() {
		switch r.GetStatus() {
		case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
			acked[r.GetMessageId()] = true
		default:
			t.Fatalf("event %s after recovery: %v %s", r.GetMessageId(), r.GetStatus(), r.GetReason())
		}
	}
	t.Logf("the failed batch was accepted after space returned (%d transient retries)", retries)
	if body := readyz(t, s.metrics["ingestion"]); body != "ready\n" {
		t.Errorf("/readyz after space returned: %q, want plain ready", body)
	}
	more := bulkyBatch("disk-after", 50, at)
	if _, _, err := sendBatch(guard, c, more); err != nil {
		t.Fatalf("Ingest of a new batch after recovery: %v", err)
	}
	for _, e := range more {
		acked[e.GetMessageId()] = true
	}

	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if ids[id] != 1 {
			t.Errorf("acknowledged %s is in the log %d times, want once", id, ids[id])
		}
	}
	if len(ids) != len(acked) {
		t.Errorf("log holds %d distinct ids, %d were acknowledged", len(ids), len(acked))
	}

	// Nothing corrupt: stop the service and run bbolt's own consistency
	// check over every page of the file.
	s.stop("ingestion")
	if err := store.Check(filepath.Join(data, "ingestion.db")); err != nil {
		t.Fatal(err)
	}
}

// readyz reads a service's /readyz on its metrics address.
func readyz(t *testing.T, metrics string) string {
	t.Helper()
	resp, err := http.Get("http://" + metrics + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
