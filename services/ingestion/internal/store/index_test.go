package store

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
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"go.etcd.io/bbolt"
)

// rowCounts counts the rows of the staged, accounts and subjects buckets.
func rowCounts(t *testing.T, s *Store) (staged, accounts, subjects int) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, x := range []struct {
			name []byte
			n    *int
		}{{bucketStaged, &staged}, {bucketAccounts, &accounts}, {bucketSubjects, &subjects}} {
			if b := tx.Bucket(x.name); b != nil {
				*x.n = b.Stats().KeyN
			}
		}
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
	d, err := s.DeleteSubject(context.Background(), "w", "u", "")
	if err != nil {
		t.Fatalf("DeleteSubject() = %v", err)
	}
	if d.Events != 5 {
		t.Errorf("DeleteSubject() removed %d events, want all 5 staged ones", d.Events)
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
	s, err := Open(db, Options{Partitions: 2, DedupWindow: window, Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open() = %v", err)
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
