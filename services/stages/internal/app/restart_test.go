package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// history generates a deterministic event history: accounts moving through
// the five-stage template at different speeds.
func history(accounts, days int) []*ingestionv1.Event {
	script := []string{"content_viewed", "demo_requested", "poc_started", "contract_signed", "setup_completed", "activated",
		"report_created", "dashboard_shared", "export_run", "integration_connected", "report_created", "alert_created"}
	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	var out []*ingestionv1.Event
	for d := 0; d < days; d++ {
		for a := 0; a < accounts; a++ {
			speed := 1 + a%5
			step := d / speed
			if step >= len(script) {
				step = 6 + (d+a)%(len(script)-6)
			}
			for u := 0; u <= a%4; u++ {
				e := &ingestionv1.Event{
					Workspace: "w", AccountId: fmt.Sprintf("acct-%03d", a), UserId: fmt.Sprintf("user-%d", u),
					Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: script[step], Source: "product",
					MessageId: fmt.Sprintf("m-%d-%d-%d", d, a, u),
					Timestamp: timestamppb.New(start.Add(time.Duration(d)*24*time.Hour + time.Duration(a)*time.Minute)),
				}
				if script[step] == "integration_connected" {
					e.Properties, _ = structpb.NewStruct(map[string]any{"integration": "crm"})
				}
				out = append(out, e)
			}
		}
	}
	return out
}

// ingestionLog writes events to an ingestion log, partitioned like ingestion does.
func ingestionLog(t testing.TB, evs []*ingestionv1.Event) (*stream.Log, []uint64) {
	t.Helper()
	db := storetest.Open(t)
	l, err := stream.OpenLog(db, "ingestion", stream.LogOptions{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	heads := make([]uint64, partitions)
	err = db.Update(func(tx *pstore.Tx) error {
		for _, e := range evs {
			p := stream.Partition(e.GetWorkspace(), e.GetAccountId(), partitions)
			data, err := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}})
			if err != nil {
				return err
			}
			if heads[p], err = l.AppendTx(tx, p, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, heads
}

func decodeRecord(r stream.Record) (*ingestionv1.LogRecord, error) {
	lr := &ingestionv1.LogRecord{}
	if err := proto.Unmarshal(r.Data, lr); err != nil {
		return nil, err
	}
	lr.Offset, lr.Partition = r.Offset, r.Partition
	return lr, nil
}

// consume runs a consumer of src into db until every partition reaches
// until (0 = skip the partition's wait), then stops it.
func consume(t testing.TB, db *pstore.DB, src *stream.Log, clk clock.Clock, until []uint64) {
	t.Helper()
	r := newRig(t, db, clk.(*clock.Manual))
	parts := make([]uint32, partitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	c, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: db, Source: stream.LocalSource(src, decodeRecord), Partitions: parts,
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.GetOffset() },
		Apply:  r.app.Apply, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	for p, off := range until {
		if off > 0 {
			if err := c.WaitFor(context.Background(), uint32(p), off); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	<-done
}

// snapshot renders every account's state and the stages log.
func snapshot(t testing.TB, db *pstore.DB) string {
	t.Helper()
	var lines []string
	l, err := stream.OpenLog(db, "stages", stream.LogOptions{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *pstore.Tx) error {
		err := store.Live.Accounts(tx, "w", "default", nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
			acc, err := store.Live.GetAccount(tx, "w", "default", aj.GetAccountId())
			if err != nil {
				return false, err
			}
			lines = append(lines, prototext.Format(aj), fmt.Sprintf("%x", acc.Aggs.Marshal()))
			return true, nil
		})
		if err != nil {
			return err
		}
		for p := uint32(0); p < partitions; p++ {
			recs, err := l.Read(p, 1, 1<<20)
			if err != nil {
				return err
			}
			for _, r := range recs {
				lr := &stagesv1.LogRecord{}
				if err := proto.Unmarshal(r.Data, lr); err != nil {
					return err
				}
				lines = append(lines, fmt.Sprintf("%d/%d %s", p, r.Offset, prototext.Format(lr)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestRestartMidStreamEqualsCleanRun(t *testing.T) {
	evs := history(30, 100)
	src, heads := ingestionLog(t, evs)
	clk := clock.NewManual(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))

	clean := storetest.Open(t)
	consume(t, clean, src, clk, heads)
	want := snapshot(t, clean)

	path := filepath.Join(t.TempDir(), "stages.db")
	db, err := pstore.Open(path, pstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	half := make([]uint64, len(heads))
	for p, h := range heads {
		half[p] = h / 2
	}
	consume(t, db, src, clk, half)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = pstore.Open(path, pstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	consume(t, db, src, clk, heads)
	got := snapshot(t, db)

	if got != want {
		t.Fatalf("state after restart differs from a clean run (%d vs %d bytes)", len(got), len(want))
	}
	if !strings.Contains(want, `"adoption"`) || !strings.Contains(want, "dropoff") {
		t.Fatalf("history did not exercise transitions and signals:\n%.2000s", want)
	}
}
