package app_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/store"
	"github.com/cairn-dev/cairn/services/health/internal/store/storedump"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The logs hold records with offset and partition left zero; like Subscribe,
// the decoders fill them in from the stream record.
func decodeIngestion(r stream.Record) (*ingestionv1.LogRecord, error) {
	v := &ingestionv1.LogRecord{}
	if err := proto.Unmarshal(r.Data, v); err != nil {
		return nil, err
	}
	v.Offset, v.Partition = r.Offset, r.Partition
	return v, nil
}

func decodeStages(r stream.Record) (*stagesv1.LogRecord, error) {
	v := &stagesv1.LogRecord{}
	if err := proto.Unmarshal(r.Data, v); err != nil {
		return nil, err
	}
	v.Offset, v.Partition = r.Offset, r.Partition
	return v, nil
}

// TestConsumersApplyUpstreamLogs runs the real consumers against local
// ingestion and stages logs and checks state, cursors and the health log.
func TestConsumersApplyUpstreamLogs(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0)
	const parts = 2
	upDB, db := storetest.Open(t), storetest.Open(t)
	ingLog, err := stream.OpenLog(upDB, "ingestion", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	stLog, err := stream.OpenLog(upDB, "stages", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	hLog, err := stream.OpenLog(db, "health", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Options{DB: db, Log: hLog, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.Workers(app.Sources{
		Partitions: stream.Owned(0, 1, parts),
		Ingestion:  []stream.Source[*ingestionv1.LogRecord]{stream.LocalSource(ingLog, decodeIngestion)},
		Stages:     stream.LocalSource(stLog, decodeStages),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range w.Run {
		g.Go(func() error { return run(gctx) })
	}

	p := stream.Partition("w", "acme", parts)
	ev := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
		Workspace: "w", AccountId: "acme", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", Event: "billing.subscription_started",
		Timestamp: timestamppb.New(t0)}}}
	tr := &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
		Workspace: "w", AccountId: "acme", ToStage: "onboarding", At: timestamppb.New(t0)}}}
	evb, _ := proto.Marshal(ev)
	trb, _ := proto.Marshal(tr)
	off, err := ingLog.Append(ctx, p, evb, evb)
	if err != nil {
		t.Fatal(err)
	}
	soff, err := stLog.Append(ctx, p, trb)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ingestion[0].WaitFor(ctx, p, off+1); err != nil {
		t.Fatal(err)
	}
	if err := w.Stages.WaitFor(ctx, p, soff); err != nil {
		t.Fatal(err)
	}
	var h *healthv1.AccountHealth
	if err := db.View(func(tx *kv.Tx) error {
		h, err = store.GetHealth(tx, "w", "acme")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if h.GetStage() != "onboarding" || h.GetProfile() != "onboarding" || h.GetScore() <= 0 {
		t.Errorf("health: stage %q profile %q score %v", h.GetStage(), h.GetProfile(), h.GetScore())
	}
	if hLog.Head(p) == 0 {
		t.Error("nothing published on the health log")
	}
	// GetStatus reports every consumer's partitions, the ingestion
	// replicas' first; partition p of each is applied up to its head.
	var got []string
	for _, l := range w.Lag() {
		got = append(got, fmt.Sprintf("%s/%d", l.Name, l.Partition))
		if l.Partition == p {
			if want := map[string]uint64{"ingestion": off + 1, "stages": soff}[l.Name]; l.Cursor != want {
				t.Errorf("%s partition %d: cursor %d, want %d", l.Name, p, l.Cursor, want)
			}
		}
	}
	if want := []string{"ingestion/0", "ingestion/1", "stages/0", "stages/1"}; !slices.Equal(got, want) {
		t.Errorf("Lag() lists %v, want %v", got, want)
	}
	cancel()
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}

// dump renders every bucket so two stores can be compared.
func dump(t *testing.T, db *kv.DB) string {
	t.Helper()
	return storedump.String(t, db)
}

// consume runs the real consumers on db until they reach the ingestion
// log's head on every partition, then stops them.
func consume(t *testing.T, db *kv.DB, ingLog *stream.Log, clk clock.Clock, parts uint32) {
	t.Helper()
	hLog, err := stream.OpenLog(db, "health", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Options{DB: db, Log: hLog, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.Workers(app.Sources{Partitions: stream.Owned(0, 1, parts),
		Ingestion: []stream.Source[*ingestionv1.LogRecord]{stream.LocalSource(ingLog, decodeIngestion)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Ingestion.Run(ctx) }()
	for p := uint32(0); p < parts; p++ {
		if err := w.Ingestion[0].WaitFor(ctx, p, ingLog.Head(p)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRestartMidStreamEqualsCleanRun stops the consumer halfway through the
// upstream log, reopens the store and resumes from the saved cursors; the
// resulting store (state, cursors, health log) must equal a clean run's.
func TestRestartMidStreamEqualsCleanRun(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0.AddDate(0, 0, 60))
	const parts = 3
	var recs [][]byte
	var keys []uint32
	for day := 0; day < 40; day++ {
		for a := 0; a < 6; a++ {
			acct := fmt.Sprintf("acct-%d", a)
			for u := 0; u <= a%3; u++ {
				ev := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
					Workspace: "w", AccountId: acct, Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
					UserId: fmt.Sprintf("u%d", u), Event: featureOn(day, u),
					Timestamp: timestamppb.New(t0.AddDate(0, 0, day))}}}
				data, err := proto.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, data)
				keys = append(keys, stream.Partition("w", acct, parts))
			}
		}
	}
	appendAll := func(l *stream.Log, from, to int) {
		for i := from; i < to; i++ {
			if _, err := l.Append(context.Background(), keys[i], recs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}

	cleanUp := storetest.Open(t)
	clean, err := kv.Open(filepath.Join(t.TempDir(), "clean.db"), kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer clean.Close()
	cleanLog, err := stream.OpenLog(cleanUp, "ingestion", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(cleanLog, 0, len(recs))
	consume(t, clean, cleanLog, clk, parts)

	up := storetest.Open(t)
	upLog, err := stream.OpenLog(up, "ingestion", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "health.db")
	db, err := kv.Open(path, kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(upLog, 0, len(recs)/2)
	consume(t, db, upLog, clk, parts)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = kv.Open(path, kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	appendAll(upLog, len(recs)/2, len(recs))
	consume(t, db, upLog, clk, parts)

	a, b := dump(t, clean), dump(t, db)
	if a != b {
		t.Fatalf("restarted run differs from the clean run (%d vs %d bytes)", len(a), len(b))
	}
	if !strings.Contains(a, "health/w/\"acct-5\"") || !strings.Contains(a, "snapshots/w/") {
		t.Fatalf("the compared stores hold no health state:\n%.500s", a)
	}
}

// TestSchema1FileRebuildsFromLog consumes a log into a schema-1 file, puts
// its aggregates back in the old health encoding, and reopens it with the
// current schema: the migration resets the cursors, the consumer replays
// the log, and the accounts, scores, signals and snapshots equal a clean
// run's (the health log holds the replayed records a second time).
func TestSchema1FileRebuildsFromLog(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0.AddDate(0, 0, 30))
	const parts = 2
	up := storetest.Open(t)
	ingLog, err := stream.OpenLog(up, "ingestion", stream.LogOptions{Partitions: parts, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for day := 0; day < 20; day++ {
		for a := 0; a < 4; a++ {
			acct := fmt.Sprintf("acct-%d", a)
			ev := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "w", AccountId: acct, Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
				UserId: fmt.Sprintf("u%d", day%(a+1)), Event: fmt.Sprintf("f%d", day%3),
				Timestamp: timestamppb.New(t0.AddDate(0, 0, day))}}}
			data, err := proto.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ingLog.Append(context.Background(), stream.Partition("w", acct, parts), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	open := func(path string, version uint32) *kv.DB {
		db, err := kv.Open(path, kv.Options{NoSync: true, SchemaVersion: version, Migrations: store.Migrations})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	clean := open(filepath.Join(t.TempDir(), "clean.db"), store.SchemaVersion)
	defer clean.Close()
	consume(t, clean, ingLog, clk, parts)

	path := filepath.Join(t.TempDir(), "old.db")
	db := open(path, 1)
	consume(t, db, ingLog, clk, parts)
	// An aggregate of the old health codec (see the store tests).
	old := []byte{1, 1, 'w', 6, 'a', 'c', 'c', 't', '-', '0', 1, 0x80, 0x86, 0x9c, 0x9a, 0x0d, 0}
	if err := db.Update(func(tx *kv.Tx) error {
		b, err := tx.Bucket("accounts", "w")
		if err != nil {
			return err
		}
		return b.ForEach(func(k, _ []byte) error { return b.Put(k, old) })
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(path, store.SchemaVersion)
	defer db.Close()
	consume(t, db, ingLog, clk, parts)

	derived := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "log/") && !strings.HasPrefix(l, "_cursors/\"health") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	a, b := derived(dump(t, clean)), derived(dump(t, db))
	if a != b {
		t.Fatalf("rebuilt store differs from a clean run (%d vs %d bytes)", len(a), len(b))
	}
	if !strings.Contains(a, "accounts/w/\"acct-3\"") {
		t.Fatalf("the compared stores hold no accounts:\n%.500s", a)
	}
}

// featureOn is user u's event on day of the restart fixture: a purchase
// first (health scores paying accounts only), then the vocabulary's
// features.
func featureOn(day, u int) string {
	if day == 0 && u == 0 {
		return "billing.subscription_started"
	}
	return vocab.Features()[(day+u)%4]
}
