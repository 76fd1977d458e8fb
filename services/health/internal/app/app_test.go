package app_test

import (
	"context"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"go.etcd.io/bbolt"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/engine"
	"github.com/cairn-dev/cairn/services/health/internal/store"
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
	eng, err := engine.New(engine.Config{Log: hLog, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	w, err := app.Background(app.Options{
		DB: db, Engine: eng, Partitions: parts, Clock: clk,
		Ingestion: stream.LocalSource(ingLog, decodeIngestion),
		Stages:    stream.LocalSource(stLog, decodeStages),
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
		Workspace: "w", AccountId: "acme", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", Event: "report_created",
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
	if err := w.Ingestion.WaitFor(ctx, p, off+1); err != nil {
		t.Fatal(err)
	}
	if err := w.Stages.WaitFor(ctx, p, soff); err != nil {
		t.Fatal(err)
	}
	var h *healthv1.AccountHealth
	if err := db.View(func(tx *bbolt.Tx) error {
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
	cancel()
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}
