package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

// rowCounts counts the rows of the staged, accounts and subjects buckets.
func rowCounts(t *testing.T, s *App) (staged, accounts, subjects int) {
	t.Helper()
	err := s.db.View(func(tx *pkgstore.Tx) error {
		c := s.st.Counts(tx)
		staged, accounts, subjects = c.Staged, c.Timeline, c.Subjects
		return nil
	})
	if err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return staged, accounts, subjects
}

func TestFlushMovesStagedRows(t *testing.T) {
	tests := []struct {
		name  string
		chunk int
		// events: i%accounts picks the account, "" leaves it unattributed.
		accounts     []string
		n            int
		wantAccounts int
		wantSubjects int
	}{
		{name: "attributed events get both rows", chunk: 100, accounts: []string{"acme", "globex"}, n: 6, wantAccounts: 6, wantSubjects: 6},
		{name: "unattributed events get a subject row only", chunk: 100, accounts: []string{""}, n: 3, wantAccounts: 0, wantSubjects: 3},
		{name: "more rows than one chunk take several transactions", chunk: 2, accounts: []string{"acme", ""}, n: 7, wantAccounts: 4, wantSubjects: 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			s := open(t, clk)
			var events []*ingestionv1.Event
			for i := range tc.n {
				e := &ingestionv1.Event{MessageId: fmt.Sprint("m", i), UserId: fmt.Sprint("u", i%3)}
				if a := tc.accounts[i%len(tc.accounts)]; a != "" {
					e.Context = withGroup(a)
				}
				events = append(events, ev(t, clk, e))
			}
			ingest(t, s, "w", events...)
			if staged, acc, sub := rowCounts(t, s); staged != tc.n || acc != 0 || sub != 0 {
				t.Fatalf("before flush: staged, accounts, subjects = %d, %d, %d; want %d, 0, 0", staged, acc, sub, tc.n)
			}
			if err := s.flush(context.Background(), tc.chunk); err != nil {
				t.Fatalf("flush() = %v", err)
			}
			if staged, acc, sub := rowCounts(t, s); staged != 0 || acc != tc.wantAccounts || sub != tc.wantSubjects {
				t.Errorf("after flush: staged, accounts, subjects = %d, %d, %d; want 0, %d, %d", staged, acc, sub, tc.wantAccounts, tc.wantSubjects)
			}
		})
	}
}

func TestTimelineSeesStagedEvents(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk)
	for i := range 3 {
		ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: fmt.Sprint("m", i), UserId: "u", Context: withGroup("acme")}))
		clk.Advance(time.Second)
	}
	evs, _, err := s.Timeline(context.Background(), TimelineQuery{Workspace: "w", Account: "acme", Limit: 10})
	if err != nil {
		t.Fatalf("Timeline() = %v", err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.GetMessageId())
	}
	if fmt.Sprint(got) != "[m2 m1 m0]" {
		t.Errorf("Timeline() = %v, want [m2 m1 m0] (newest first, nothing left staged)", got)
	}
}

func TestDeleteSubjectIndexesStagedEventsFirst(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk) // DeleteChunk 2
	for i := range 5 {
		ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: fmt.Sprint("m", i), UserId: "u", Context: withGroup("acme")}))
	}
	deleted, _, err := s.DeleteSubject(context.Background(), "w", "u", "")
	if err != nil {
		t.Fatalf("DeleteSubject() = %v", err)
	}
	if deleted != 5 {
		t.Errorf("DeleteSubject() removed %d events, want all 5 staged ones", deleted)
	}
	if staged, acc, sub := rowCounts(t, s); staged != 0 || acc != 0 || sub != 0 {
		t.Errorf("after delete: staged, accounts, subjects = %d, %d, %d; want 0, 0, 0", staged, acc, sub)
	}
}

func TestIndexLoop(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk)
	ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "m", UserId: "u", Context: withGroup("acme")}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Index(ctx) }()
	// The first pass runs at once; once the loop waits on the clock the
	// staged row is indexed.
	for clk.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	if staged, acc, sub := rowCounts(t, s); staged != 0 || acc != 1 || sub != 1 {
		t.Errorf("after a pass: staged, accounts, subjects = %d, %d, %d; want 0, 1, 1", staged, acc, sub)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Index() = %v", err)
	}
}

func TestIndexLoopSurvivesFailures(t *testing.T) {
	clk := clock.NewManual(t0)
	db := storetest.Open(t)
	var logs bytes.Buffer
	s, err := New(db, Options{Partitions: 2, DedupWindow: window, Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	if err := db.Close(); err != nil { // every pass now fails
		t.Fatalf("Close() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Index(ctx) }()
	// A failed pass is logged and the loop waits for the next one instead
	// of returning an error that would stop the service.
	for clk.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Index() = %v, want nil after cancel", err)
	}
	if !strings.Contains(logs.String(), "index staged rows failed") {
		t.Errorf("log = %q, want the failure logged", logs.String())
	}
}

// stageEvents ingests n events of users u0..u2 (account acme for even i,
// none for odd i) with message ids prefix0..; the Index loop is not running,
// so their index rows stay staged.
func stageEvents(t *testing.T, s *App, clk clock.Clock, prefix string, n int) {
	t.Helper()
	for i := range n {
		e := &ingestionv1.Event{MessageId: fmt.Sprint(prefix, i), UserId: fmt.Sprint("u", i%3)}
		if i%2 == 0 {
			e.Context = withGroup("acme")
		}
		ingest(t, s, "w", ev(t, clk, e))
	}
}

func TestIndexPassMovesStagedRows(t *testing.T) {
	// 7 events: 4 timeline rows and 7 subject rows.
	for _, txRows := range []int{1, 3, 11, 1000} {
		t.Run(fmt.Sprint("tx rows ", txRows), func(t *testing.T) {
			clk := clock.NewManual(t0)
			s := open(t, clk)
			s.opts.IndexTxRows = txRows
			stageEvents(t, s, clk, "m", 7)
			if err := s.indexPass(context.Background()); err != nil {
				t.Fatalf("indexPass() = %v", err)
			}
			if staged, acc, sub := rowCounts(t, s); staged != 0 || acc != 4 || sub != 7 {
				t.Errorf("after a pass: staged, accounts, subjects = %d, %d, %d; want 0, 4, 7", staged, acc, sub)
			}
		})
	}
}

// TestIndexPassKeepsRowsStagedMeanwhile checks that rows staged while a pass
// writes its chunks stay staged for the next pass.
func TestIndexPassKeepsRowsStagedMeanwhile(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk)
	s.opts.IndexTxRows = 2
	stageEvents(t, s, clk, "m", 4) // 2 timeline, 4 subject rows
	snap, err := s.readStaged()
	if err != nil {
		t.Fatalf("readStaged() = %v", err)
	}
	stageEvents(t, s, clk, "later", 3) // 2 timeline, 3 subject rows
	if err := s.indexStaged(context.Background(), snap); err != nil {
		t.Fatalf("indexStaged() = %v", err)
	}
	if staged, acc, sub := rowCounts(t, s); staged != 3 || acc != 2 || sub != 4 {
		t.Fatalf("after the pass: staged, accounts, subjects = %d, %d, %d; want 3, 2, 4", staged, acc, sub)
	}
	if err := s.indexPass(context.Background()); err != nil {
		t.Fatalf("indexPass() = %v", err)
	}
	if staged, acc, sub := rowCounts(t, s); staged != 0 || acc != 4 || sub != 7 {
		t.Errorf("after the next pass: staged, accounts, subjects = %d, %d, %d; want 0, 4, 7", staged, acc, sub)
	}
}

// TestIndexPassStopsAfterReaderFlush checks that a pass whose rows a reader
// flushed (and here deleted) meanwhile writes nothing back: putting its
// remaining chunks would resurrect index rows of deleted events.
func TestIndexPassStopsAfterReaderFlush(t *testing.T) {
	for _, reader := range []string{"DeleteSubject", "Timeline"} {
		t.Run(reader, func(t *testing.T) {
			clk := clock.NewManual(t0)
			s := open(t, clk)
			s.opts.IndexTxRows = 1
			stageEvents(t, s, clk, "m", 6) // users u0..u2; 3 timeline, 6 subject rows
			snap, err := s.readStaged()
			if err != nil {
				t.Fatalf("readStaged() = %v", err)
			}
			wantAcc, wantSub := 3, 6
			switch reader {
			case "DeleteSubject":
				// u0 has m0 and m3 (timeline row for m0 only).
				if _, _, err := s.DeleteSubject(context.Background(), "w", "u0", ""); err != nil {
					t.Fatalf("DeleteSubject() = %v", err)
				}
				wantAcc, wantSub = 2, 4
			case "Timeline":
				if _, _, err := s.Timeline(context.Background(), TimelineQuery{Workspace: "w", Account: "acme", Limit: 10}); err != nil {
					t.Fatalf("Timeline() = %v", err)
				}
			}
			// A row staged after the reader's flush reuses no key of the
			// snapshot, so the pass still sees its rows as gone.
			stageEvents(t, s, clk, "later", 1)
			if err := s.indexStaged(context.Background(), snap); err != nil {
				t.Fatalf("indexStaged() = %v", err)
			}
			if staged, acc, sub := rowCounts(t, s); staged != 1 || acc != wantAcc || sub != wantSub {
				t.Errorf("after the pass: staged, accounts, subjects = %d, %d, %d; want 1, %d, %d", staged, acc, sub, wantAcc, wantSub)
			}
		})
	}
}

func TestPassTxRows(t *testing.T) {
	s := &App{opts: Options{IndexTxRows: 1000}}
	for _, tc := range []struct{ rows, want int }{
		{0, 1000}, {1, 1000}, {32000, 1000}, {32001, 1001}, {400000, 12500},
	} {
		if got := s.passTxRows(tc.rows); got != tc.want {
			t.Errorf("passTxRows(%d) = %d, want %d", tc.rows, got, tc.want)
		}
	}
}
