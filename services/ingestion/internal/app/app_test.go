package app

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const window = 7 * 24 * time.Hour

func open(t *testing.T, clk clock.Clock) *App {
	t.Helper()
	s, err := New(storetest.Open(t), Options{Partitions: 4, DedupWindow: window, Clock: clk, SweepChunk: 3, DeleteChunk: 2})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return s
}

// ev builds a valid event the way the server hands it to the app.
func ev(t *testing.T, clk clock.Clock, e *ingestionv1.Event) *ingestionv1.Event {
	t.Helper()
	if e.Type == ingestionv1.EventType_EVENT_TYPE_UNSPECIFIED {
		e.Type = ingestionv1.EventType_EVENT_TYPE_TRACK
	}
	if e.Type == ingestionv1.EventType_EVENT_TYPE_TRACK && e.Event == "" {
		e.Event = "report_created"
	}
	if err := validate.Event(e, validate.DefaultLimits(), clk.Now()); err != nil {
		t.Fatalf("test event invalid: %v", err)
	}
	return e
}

func withGroup(account string) *structpb.Struct {
	s, _ := structpb.NewStruct(map[string]any{"groupId": account})
	return s
}

// ingest returns where each event was logged, nil for a duplicate.
func ingest(t *testing.T, s *App, ws string, events ...*ingestionv1.Event) []*commonv1.LogPosition {
	t.Helper()
	out, err := s.Ingest(context.Background(), ws, events)
	if err != nil {
		t.Fatalf("Ingest() = %v", err)
	}
	return out
}

// records returns every record of every partition, decoded.
func records(t *testing.T, s *App) []*ingestionv1.LogRecord {
	t.Helper()
	var out []*ingestionv1.LogRecord
	for p := range s.Log().Partitions() {
		recs, err := s.Log().Read(p, 0, 100000)
		if err != nil {
			t.Fatalf("Read(%d) = %v", p, err)
		}
		for _, r := range recs {
			rec, err := store.Decode(r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	return out
}

func TestDedupWindow(t *testing.T) {
	tests := []struct {
		name    string
		ws      string
		after   time.Duration // since the first ingest
		sweep   bool          // run a full sweep first
		wantDup bool
	}{
		{name: "same id right away", ws: "w1", after: 0, wantDup: true},
		{name: "an hour later", ws: "w1", after: time.Hour, wantDup: true},
		{name: "just inside the window", ws: "w1", after: window - time.Second, wantDup: true},
		{name: "just inside the window after a sweep", ws: "w1", after: window - time.Second, sweep: true, wantDup: true},
		{name: "after the window", ws: "w1", after: window + time.Second, wantDup: false},
		{name: "after the window and a sweep", ws: "w1", after: window + time.Second, sweep: true, wantDup: false},
		{name: "other workspace", ws: "w2", after: time.Minute, wantDup: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			s := open(t, clk)
			first := ingest(t, s, "w1", ev(t, clk, &ingestionv1.Event{MessageId: "m1", UserId: "u"}))
			if first[0] == nil {
				t.Fatalf("first ingest = %+v, want accepted", first[0])
			}
			clk.Advance(tc.after)
			if tc.sweep {
				var after []byte
				for {
					next, _, err := s.SweepChunk(context.Background(), after)
					if err != nil {
						t.Fatal(err)
					}
					if after = next; after == nil {
						break
					}
				}
			}
			got := ingest(t, s, tc.ws, ev(t, clk, &ingestionv1.Event{MessageId: "m1", UserId: "u"}))
			if (got[0] == nil) != tc.wantDup {
				t.Errorf("duplicate = %v, want %v", got[0] == nil, tc.wantDup)
			}
		})
	}
}

func TestDuplicateWithinBatch(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk)
	out := ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "a", UserId: "u"}),
		ev(t, clk, &ingestionv1.Event{MessageId: "a", UserId: "u"}), ev(t, clk, &ingestionv1.Event{MessageId: "b", UserId: "u"}))
	if out[0] == nil || out[1] != nil || out[2] == nil {
		t.Errorf("outcomes = %+v, want accepted, duplicate, accepted", out)
	}
	if n := len(records(t, s)); n != 2 {
		t.Errorf("log holds %d records, want 2", n)
	}
}

func TestSweepBounded(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk) // SweepChunk 3
	for i := range 7 {
		ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: fmt.Sprint("old", i), UserId: "u"}))
	}
	clk.Advance(window + time.Hour)
	ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "fresh", UserId: "u"}))
	var after []byte
	chunks, deleted := 0, 0
	for {
		next, n, err := s.SweepChunk(context.Background(), after)
		if err != nil {
			t.Fatal(err)
		}
		chunks++
		deleted += n
		if after = next; after == nil {
			break
		}
	}
	if deleted != 7 || chunks != 3 {
		t.Errorf("sweep deleted %d ids in %d chunks, want 7 in 3", deleted, chunks)
	}
	if got := ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "fresh", UserId: "u"})); got[0] != nil {
		t.Error("sweep forgot an id inside the window")
	}
}

func TestSweepLoop(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk)
	ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "m", UserId: "u"}))
	clk.Advance(window + time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Sweep(ctx) }()
	// The first pass runs at once; once the loop waits on the clock the id is gone.
	for clk.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	if got := ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "m", UserId: "u"})); got[0] == nil {
		t.Error("expired id still deduplicated after a sweep")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Sweep() = %v", err)
	}
}

func TestAttribution(t *testing.T) {
	type step struct {
		event       *ingestionv1.Event
		wantAccount string
	}
	group := func(user, account string) *ingestionv1.Event {
		return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: user, GroupId: account}
	}
	tests := []struct {
		name          string
		batches       [][]step
		wantReattrib  map[string]string // message id -> account of its re-attributed copy
		wantPartition string            // account whose partition must hold every re-attributed copy
	}{
		{
			name: "context.groupId attributes directly",
			batches: [][]step{{
				{&ingestionv1.Event{MessageId: "t1", UserId: "u", Context: withGroup("acme")}, "acme"},
			}},
		},
		{
			name: "later group call re-attributes earlier events",
			batches: [][]step{
				{{&ingestionv1.Event{MessageId: "t1", UserId: "u"}, ""}},
				{{&ingestionv1.Event{MessageId: "t2", UserId: "u", Type: ingestionv1.EventType_EVENT_TYPE_PAGE, Name: "Pricing"}, ""}},
				{{withID(group("u", "acme"), "g1"), "acme"}},
				{{&ingestionv1.Event{MessageId: "t3", UserId: "u"}, "acme"}},
			},
			wantReattrib: map[string]string{"t1": "acme", "t2": "acme"},
		},
		{
			name: "group call in the same batch",
			batches: [][]step{{
				{&ingestionv1.Event{MessageId: "t1", AnonymousId: "anon"}, ""},
				{withID(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, AnonymousId: "anon", GroupId: "globex"}, "g1"), "globex"},
				{&ingestionv1.Event{MessageId: "t2", AnonymousId: "anon"}, "globex"},
			}},
			wantReattrib: map[string]string{"t1": "globex"},
		},
		{
			name: "regrouping moves later events only",
			batches: [][]step{
				{{withID(group("u", "acme"), "g1"), "acme"}},
				{{&ingestionv1.Event{MessageId: "t1", UserId: "u"}, "acme"}},
				{{withID(group("u", "globex"), "g2"), "globex"}},
				{{&ingestionv1.Event{MessageId: "t2", UserId: "u"}, "globex"}},
				{{&ingestionv1.Event{MessageId: "t3", UserId: "u", Context: withGroup("initech")}, "initech"}},
			},
		},
		{
			name: "alias after group carries anonymous events to the account",
			batches: [][]step{
				{{&ingestionv1.Event{MessageId: "t1", AnonymousId: "anon"}, ""}},
				{{withID(group("u", "acme"), "g1"), "acme"}},
				{{withID(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "u", PreviousId: "anon"}, "al"), "acme"}},
			},
			wantReattrib: map[string]string{"t1": "acme"},
		},
		{
			name: "alias before group moves pending events to the user",
			batches: [][]step{
				{{&ingestionv1.Event{MessageId: "t1", AnonymousId: "anon"}, ""}},
				{{withID(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "u", PreviousId: "anon"}, "al"), ""}},
				{{withID(group("u", "acme"), "g1"), "acme"}},
			},
			wantReattrib: map[string]string{"t1": "acme", "al": "acme"},
		},
		{
			name: "alias inherits the previous identity's account",
			batches: [][]step{
				{{withID(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, AnonymousId: "anon", GroupId: "acme"}, "g1"), "acme"}},
				{{withID(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: "u", PreviousId: "anon"}, "al"), ""}},
				{{&ingestionv1.Event{MessageId: "t1", UserId: "u"}, "acme"}},
			},
			wantReattrib: map[string]string{"al": "acme"},
		},
		{
			name: "other users stay pending",
			batches: [][]step{
				{{&ingestionv1.Event{MessageId: "t1", UserId: "other"}, ""}},
				{{withID(group("u", "acme"), "g1"), "acme"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			s := open(t, clk)
			for _, batch := range tc.batches {
				var events []*ingestionv1.Event
				for _, st := range batch {
					events = append(events, ev(t, clk, st.event))
				}
				ingest(t, s, "w", events...)
				for i, st := range batch {
					if got := events[i].GetAccountId(); got != st.wantAccount {
						t.Errorf("%s: account = %q, want %q", st.event.GetMessageId(), got, st.wantAccount)
					}
				}
				clk.Advance(time.Minute)
			}
			got := map[string]string{}
			logged := map[string]string{} // message id -> account in the original record
			for _, r := range records(t, s) {
				e := r.GetEvent()
				if !e.GetReattributed() {
					logged[e.GetMessageId()] = e.GetAccountId()
					continue
				}
				got[e.GetMessageId()] = e.GetAccountId()
				if want := stream.Partition("w", e.GetAccountId(), 4); r.GetPartition() != want {
					t.Errorf("re-attributed %s in partition %d, want the account's %d", e.GetMessageId(), r.GetPartition(), want)
				}
			}
			for _, batch := range tc.batches {
				for _, st := range batch {
					if a, ok := logged[st.event.GetMessageId()]; !ok || a != st.wantAccount {
						t.Errorf("log record of %s has account %q (found %v), want %q", st.event.GetMessageId(), a, ok, st.wantAccount)
					}
				}
			}
			if len(got) != len(tc.wantReattrib) {
				t.Errorf("re-attributed copies = %v, want %v", got, tc.wantReattrib)
			}
			for id, acc := range tc.wantReattrib {
				if got[id] != acc {
					t.Errorf("copy of %s attributed to %q, want %q", id, got[id], acc)
				}
			}
			// Every re-attributed copy is on the account's timeline.
			for id, acc := range tc.wantReattrib {
				evs, _, err := s.Timeline(context.Background(), TimelineQuery{Workspace: "w", Account: acc, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, e := range evs {
					found = found || (e.GetMessageId() == id && e.GetReattributed())
				}
				if !found {
					t.Errorf("timeline of %s lacks the re-attributed %s", acc, id)
				}
			}
		})
	}
}

func withID(e *ingestionv1.Event, id string) *ingestionv1.Event { e.MessageId = id; return e }

func TestTimeline(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk)
	names := []string{"a", "b", "crm.mql", "a", "b", "a", "survey.nps", "a"}
	for i, n := range names {
		e := &ingestionv1.Event{MessageId: fmt.Sprint("m", i), UserId: "u", Context: withGroup("acme"), Event: n}
		if n == "survey.nps" {
			e.Properties, _ = structpb.NewStruct(map[string]any{"score": 9})
		}
		ingest(t, s, "w", ev(t, clk, e))
		clk.Advance(time.Second)
	}
	ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "x", UserId: "u", Context: withGroup("acme2")}))
	ingest(t, s, "other", ev(t, clk, &ingestionv1.Event{MessageId: "y", UserId: "u", Context: withGroup("acme")}))

	tests := []struct {
		name  string
		q     TimelineQuery
		pages [][]string
	}{
		{name: "all, pages of 3", q: TimelineQuery{Limit: 3},
			pages: [][]string{{"m7", "m6", "m5"}, {"m4", "m3", "m2"}, {"m1", "m0"}}},
		{name: "exact page size ends cleanly", q: TimelineQuery{Limit: 4},
			pages: [][]string{{"m7", "m6", "m5", "m4"}, {"m3", "m2", "m1", "m0"}}},
		{name: "by name", q: TimelineQuery{Name: "a", Limit: 2}, pages: [][]string{{"m7", "m5"}, {"m3", "m0"}}},
		{name: "by source", q: TimelineQuery{Source: "crm", Limit: 10}, pages: [][]string{{"m2"}}},
		{name: "window", q: TimelineQuery{Start: t0.Add(2 * time.Second), End: t0.Add(5 * time.Second), Limit: 10},
			pages: [][]string{{"m4", "m3", "m2"}}},
		{name: "unknown account", q: TimelineQuery{Account: "nobody", Limit: 10}, pages: [][]string{{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Workspace = "w"
			if q.Account == "" {
				q.Account = "acme"
			}
			for i, want := range tc.pages {
				evs, next, err := s.Timeline(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range evs {
					got = append(got, e.GetMessageId())
				}
				if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("page %d = %v, want %v", i, got, want)
				}
				last := i == len(tc.pages)-1
				if last != (next == nil) {
					t.Errorf("page %d: next = %x, want last page %v", i, next, last)
				}
				q.After = next
			}
		})
	}
}

func TestDeleteSubject(t *testing.T) {
	tests := []struct {
		name          string
		user, account string
		wantDeleted   int64
		gone, kept    []string // message ids removed from / kept in the log
		// keptDedup are ids dedup must still remember. Deleting an account
		// also forgets p1's id: its re-attributed copy shares the message id
		// with the user's original, which stays in the user's partition.
		keptDedup []string
		// wantU1Account is where a later event of u1 (grouped with acme)
		// is attributed.
		wantU1Account string
	}{
		{name: "user", user: "u1", wantDeleted: 5, gone: []string{"a1", "a2", "p1", "g1"}, kept: []string{"b1", "o1"}, keptDedup: []string{"b1", "o1"}},
		{name: "account", account: "acme", wantDeleted: 5, gone: []string{"a1", "a2", "b1", "g1"}, kept: []string{"p1", "o1"}, keptDedup: []string{"o1"}},
		{name: "unknown user still gets a tombstone", user: "nobody", wantDeleted: 0,
			kept: []string{"a1", "a2", "b1", "p1", "g1", "o1"}, keptDedup: []string{"a1", "a2", "b1", "p1", "g1", "o1"}, wantU1Account: "acme"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(t0)
			s := open(t, clk) // DeleteChunk 2: deletions take several transactions
			ingest(t, s, "w",
				ev(t, clk, &ingestionv1.Event{MessageId: "a1", UserId: "u1", Context: withGroup("acme")}),
				ev(t, clk, &ingestionv1.Event{MessageId: "a2", UserId: "u1", Context: withGroup("acme")}),
				ev(t, clk, &ingestionv1.Event{MessageId: "b1", UserId: "u2", Context: withGroup("acme")}),
				ev(t, clk, &ingestionv1.Event{MessageId: "p1", UserId: "u1"}), // pending, then re-attributed
				ev(t, clk, &ingestionv1.Event{MessageId: "o1", UserId: "u3", Context: withGroup("globex")}))
			ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "g1", UserId: "u1", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme"}))
			// Users of other workspaces and accounts keep their mapping.
			ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "g2", UserId: "u3", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "globex"}))
			ingest(t, s, "w2", ev(t, clk, &ingestionv1.Event{MessageId: "g3", UserId: "u1", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme"}))

			deleted, tomb, err := s.DeleteSubject(context.Background(), "w", tc.user, tc.account)
			if err != nil {
				t.Fatalf("DeleteSubject() = %v", err)
			}
			if deleted != tc.wantDeleted {
				t.Errorf("deleted %d events, want %d", deleted, tc.wantDeleted)
			}
			present := map[string]int{}
			var tombs []*ingestionv1.LogRecord
			for _, r := range records(t, s) {
				if r.GetTombstone() != nil {
					tombs = append(tombs, r)
					continue
				}
				present[r.GetEvent().GetMessageId()]++
			}
			for _, id := range tc.gone {
				if present[id] > 0 {
					t.Errorf("%s still in the log", id)
				}
			}
			for _, id := range tc.kept {
				if present[id] == 0 {
					t.Errorf("%s was removed", id)
				}
			}
			if len(tombs) == 0 || tomb == nil {
				t.Fatalf("no tombstone logged (response position %v)", tomb)
			}
			found := false
			for _, r := range tombs {
				ts := r.GetTombstone()
				if ts.GetWorkspace() != "w" || ts.GetUserId() != tc.user || ts.GetAccountId() != tc.account || !ts.GetDeletedAt().AsTime().Equal(t0) {
					t.Errorf("tombstone = %v", ts)
				}
				found = found || (r.GetPartition() == tomb.GetPartition() && r.GetOffset() == tomb.GetOffset())
			}
			if !found {
				t.Errorf("no tombstone at the reported position %v", tomb)
			}
			// Deleted ids are forgotten by dedup; kept ones are not.
			for _, id := range tc.gone {
				if out := ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: id, UserId: "new"})); out[0] == nil {
					t.Errorf("dedup still remembers deleted %s", id)
				}
			}
			for _, id := range tc.keptDedup {
				if out := ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: id, UserId: "new"})); out[0] != nil {
					t.Errorf("dedup forgot kept %s", id)
				}
			}
			later := ev(t, clk, &ingestionv1.Event{MessageId: "later", UserId: "u1"})
			ingest(t, s, "w", later)
			if later.GetAccountId() != tc.wantU1Account {
				t.Errorf("later event of u1 attributed to %q, want %q", later.GetAccountId(), tc.wantU1Account)
			}
			for _, c := range []struct{ ws, user, want string }{{"w", "u3", "globex"}, {"w2", "u1", "acme"}} {
				e := ev(t, clk, &ingestionv1.Event{MessageId: "later-" + c.ws + c.user, UserId: c.user})
				ingest(t, s, c.ws, e)
				if e.GetAccountId() != c.want {
					t.Errorf("%s/%s attributed to %q after the deletion, want %q", c.ws, c.user, e.GetAccountId(), c.want)
				}
			}
			// The timeline no longer lists deleted events.
			evs, _, err := s.Timeline(context.Background(), TimelineQuery{Workspace: "w", Account: "acme", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				for _, id := range tc.gone {
					if e.GetMessageId() == id {
						t.Errorf("timeline still lists %s", id)
					}
				}
			}
		})
	}
}

func TestDeleteSubjectNeedsOneSubject(t *testing.T) {
	s := open(t, clock.NewManual(t0))
	for _, args := range [][2]string{{"", ""}, {"u", "a"}} {
		if _, _, err := s.DeleteSubject(context.Background(), "w", args[0], args[1]); err == nil {
			t.Errorf("DeleteSubject(%q, %q) succeeded", args[0], args[1])
		}
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingestion.db")
	clk := clock.NewManual(t0)
	for round := range 2 {
		db, err := pkgstore.Open(path, pkgstore.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(db, Options{Partitions: 4, DedupWindow: window, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		out := ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "m", UserId: "u"}))
		if (out[0] == nil) != (round == 1) {
			t.Errorf("round %d: duplicate = %v", round, out[0] == nil)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetentionPrunesIndexes(t *testing.T) {
	clk := clock.NewManual(t0)
	s, err := New(storetest.Open(t), Options{Partitions: 2, DedupWindow: window, Retention: 24 * time.Hour, Clock: clk, SweepChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s, "w",
		ev(t, clk, &ingestionv1.Event{MessageId: "old1", UserId: "u", Context: withGroup("acme")}),
		ev(t, clk, &ingestionv1.Event{MessageId: "old2", UserId: "u", Context: withGroup("acme")}),
		ev(t, clk, &ingestionv1.Event{MessageId: "oldpending", UserId: "lonely"}))
	clk.Advance(25 * time.Hour)
	ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "new", UserId: "u", Context: withGroup("acme")}))
	if _, err := s.Log().ApplyRetention(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.sweepPass(context.Background()); err != nil {
		t.Fatal(err)
	}
	var counts map[string]int
	if err := s.db.View(func(tx *pkgstore.Tx) error {
		c := s.st.Counts(tx)
		counts = map[string]int{"pending": c.Pending, "accounts": c.Timeline, "subjects": c.Subjects}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pending": 0, "accounts": 1, "subjects": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s rows after pruning = %d, want %d", k, counts[k], n)
		}
	}
	evs, _, err := s.Timeline(context.Background(), TimelineQuery{Workspace: "w", Account: "acme", Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].GetMessageId() != "new" {
		t.Errorf("timeline after retention = %v, %v", evs, err)
	}
	// A later group call finds nothing pending for the expired event.
	ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: "g", UserId: "lonely", Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme"}))
	for _, r := range records(t, s) {
		if r.GetEvent().GetReattributed() {
			t.Errorf("expired pending event re-attributed: %v", r.GetEvent())
		}
	}
}

func TestDeleteAccountUnmapsUsersInChunks(t *testing.T) {
	clk := clock.NewManual(t0)
	s := open(t, clk) // DeleteChunk 2: 16 user rows per transaction
	const users = 40
	for i := range users {
		account := "acme"
		if i%2 == 1 {
			account = "globex"
		}
		ingest(t, s, "w", ev(t, clk, &ingestionv1.Event{MessageId: fmt.Sprint("g", i), UserId: fmt.Sprint("u", i),
			Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: account}))
	}
	if _, _, err := s.DeleteSubject(context.Background(), "w", "", "acme"); err != nil {
		t.Fatal(err)
	}
	for i := range users {
		e := ev(t, clk, &ingestionv1.Event{MessageId: fmt.Sprint("t", i), UserId: fmt.Sprint("u", i)})
		ingest(t, s, "w", e)
		want := ""
		if i%2 == 1 {
			want = "globex"
		}
		if e.GetAccountId() != want {
			t.Errorf("u%d attributed to %q, want %q", i, e.GetAccountId(), want)
		}
	}
}
