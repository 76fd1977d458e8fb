package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream/jetlog/jettest"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
	"github.com/cairn-dev/cairn/pkg/testport"
	"github.com/cairn-dev/cairn/services/ingestion/internal/app"
)

// TestJetStreamBackend runs ingestion with -log-backend jetstream against
// an in-process 3-node cluster: events are acknowledged once their R3
// streams hold them, Subscribe serves them from the streams at the offsets
// ingestion gave them, a resent batch is reported duplicate (the dedup
// index stays in ingestion.db) without a second copy, DeleteSubject
// deletes the records from the streams too, and a restart on the same file
// and streams carries on.
func TestJetStreamBackend(t *testing.T) {
	c := jettest.Start(t, 3)
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.json")
	kr, err := auth.LoadKeyring(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	writeTok, err := kr.Create("w", auth.RoleWrite)
	if err != nil {
		t.Fatal(err)
	}
	adminTok, err := kr.Create("w", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	serviceTok, err := kr.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}
	addr := testport.Addr(t)
	start := func() (stop func()) {
		cfg, err := app.Parse([]string{
			"-grpc-addr", addr, "-metrics-addr", "", "-keys", keysPath, "-data", filepath.Join(dir, "data"),
			"-partitions", "2", "-log-backend", "jetstream", "-nats-url", c.URLs(),
		}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx, cfg) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}
	stop := start()
	conn := dial(t, addr, writeTok)
	defer conn.Close()
	streamtest.WaitServing(t, conn)
	client := ingestionv1.NewIngestionServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	batch := func(prefix string, n int) []*ingestionv1.Event {
		var out []*ingestionv1.Event
		for i := range n {
			out = append(out, &ingestionv1.Event{
				MessageId: fmt.Sprintf("%s-%d", prefix, i), Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "login",
				UserId: fmt.Sprintf("u%d", i%3), Context: withGroupCtx(fmt.Sprintf("acc-%d", i%3)), Timestamp: timestamppb.Now(),
			})
		}
		return out
	}
	statuses := func(resp *ingestionv1.IngestResponse) map[ingestionv1.EventStatus]int {
		out := map[ingestionv1.EventStatus]int{}
		for _, r := range resp.GetResults() {
			out[r.GetStatus()]++
		}
		return out
	}
	first := batch("a", 30)
	resp, err := client.Ingest(ctx, &ingestionv1.IngestRequest{Events: first})
	if err != nil || statuses(resp)[ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED] != 30 {
		t.Fatalf("Ingest = %v, %v; want 30 accepted", statuses(resp), err)
	}
	resp, err = client.Ingest(ctx, &ingestionv1.IngestRequest{Events: first})
	if err != nil || statuses(resp)[ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE] != 30 {
		t.Fatalf("resent Ingest = %v, %v; want 30 duplicate", statuses(resp), err)
	}

	// The streams hold every event once, at ingestion's offsets, and
	// Subscribe serves them from there.
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		var n uint64
		for p := range 2 {
			st, err := js.Stream(ctx, fmt.Sprintf("cairn-ingestion-0-events-p%05d", p))
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Config.Replicas != 3 {
				t.Errorf("stream %s has %d replicas, want 3", info.Config.Name, info.Config.Replicas)
			}
			n += info.State.Msgs
		}
		return n
	}
	if n := msgs(); n != 30 {
		t.Fatalf("streams hold %d messages, want 30", n)
	}
	counts := served(t, addr, serviceTok)
	for _, e := range first {
		if counts[e.GetMessageId()] != 1 {
			t.Errorf("Subscribe served %s %d times, want once", e.GetMessageId(), counts[e.GetMessageId()])
		}
	}
	for _, r := range resp.GetResults() {
		if r.GetPosition() != nil {
			t.Errorf("a duplicate has a position: %v", r)
		}
	}

	// Forgetting a user removes its events from the streams, and logs the
	// tombstones there.
	admin := ingestionv1.NewIngestionServiceClient(dial(t, addr, adminTok))
	del, err := admin.DeleteSubject(ctx, &ingestionv1.DeleteSubjectRequest{UserId: "u0"})
	if err != nil || del.GetEventsDeleted() != 10 {
		t.Fatalf("DeleteSubject = %v, %v; want 10 deleted", del, err)
	}
	counts = served(t, addr, serviceTok)
	for _, e := range first {
		want := 1
		if e.GetUserId() == "u0" {
			want = 0
		}
		if counts[e.GetMessageId()] != want {
			t.Errorf("after DeleteSubject, Subscribe served %s %d times, want %d", e.GetMessageId(), counts[e.GetMessageId()], want)
		}
	}
	if n := msgs(); n < 20 || n > 22 {
		t.Errorf("streams hold %d messages after deleting 10 of 30, want 20 plus the tombstones", n)
	}

	// A restart carries on from the streams' heads.
	stop()
	stop = start()
	defer stop()
	streamtest.WaitServing(t, conn)
	resp, err = client.Ingest(ctx, &ingestionv1.IngestRequest{Events: batch("b", 5)})
	if err != nil || statuses(resp)[ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED] != 5 {
		t.Fatalf("Ingest after restart = %v, %v", statuses(resp), err)
	}
	if counts := served(t, addr, serviceTok); len(counts) != 26 || counts["tombstone"] == 0 {
		t.Errorf("after restart Subscribe served %d distinct events and %d tombstones, want 25 and some", len(counts)-1, counts["tombstone"])
	}
}

// TestJetStreamBackendUnreachable checks that ingestion refuses to start,
// naming the flag, when -nats-url reaches no server.
func TestJetStreamBackendUnreachable(t *testing.T) {
	dir := t.TempDir()
	cfg, err := app.Parse([]string{
		"-grpc-addr", testport.Addr(t), "-metrics-addr", "", "-keys", filepath.Join(dir, "keys.json"), "-data", dir,
		"-log-backend", "jetstream", "-nats-url", "nats://" + testport.Addr(t), "-nats-timeout", "1s",
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "-nats-url") {
		t.Fatalf("Run = %v, want an error naming -nats-url", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("Run was cancelled")
	}
}

// withGroupCtx is an event context naming the account (context.groupId).
func withGroupCtx(account string) *structpb.Struct {
	s, _ := structpb.NewStruct(map[string]any{"groupId": account})
	return s
}

// served reads every partition up to its head through Subscribe and counts
// the events by message id and the tombstones (under "tombstone").
func served(t *testing.T, addr, serviceTok string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	eachRecord(t, addr, serviceTok, func(_ uint32, r *ingestionv1.LogRecord) {
		if r.GetTombstone() != nil {
			counts["tombstone"]++
			return
		}
		counts[r.GetEvent().GetMessageId()]++
	})
	return counts
}
