package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// stagedRows is the staged value of an event built piece by piece from the
// key functions the indexes use, the reference newStagedRow must match.
func stagedRows(accountKey, subjectKey, index []byte) []byte {
	var v []byte
	v = binary.AppendUvarint(v, uint64(len(accountKey)))
	v = append(v, accountKey...)
	v = binary.AppendUvarint(v, uint64(len(subjectKey)))
	v = append(v, subjectKey...)
	return append(v, index...)
}

func TestNewStagedRowMatchesIndexKeys(t *testing.T) {
	long := strings.Repeat("x", 300) // two-byte length prefixes
	tests := []struct {
		name             string
		account, subject string
		time             time.Time
	}{
		{"both rows", "acme", "u1", t0},
		{"subject only", "", "u1", t0},
		{"account only", "acme", "", t0},
		{"long ids", long, long, t0.Add(-100 * 365 * 24 * time.Hour)},
		{"neither", "", "", t0},
	}
	for _, tc := range tests {
		for _, withArena := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				ev := &ingestionv1.Event{MessageId: "m", AccountId: tc.account, Event: "x", Source: "product", Timestamp: timestamppb.New(tc.time)}
				var a *arena
				if withArena {
					a = &arena{}
				}
				r := newStagedRow(a, "w", ev, tc.subject)
				if tc.account == "" && tc.subject == "" {
					if r.key != nil {
						t.Fatalf("row key = %x for an event without index rows", r.key)
					}
					return
				}
				for _, pos := range []struct {
					p   uint32
					off uint64
				}{{3, 77}, {0, 1 << 40}} {
					r.setPosition(uint64(pos.off)+5, pos.p, pos.off)
					var ak, sk []byte
					if tc.account != "" {
						ak = accountKey("w", tc.account, tc.time, pos.p, pos.off)
					}
					if tc.subject != "" {
						sk = subjectKey("w", tc.subject, pos.p, pos.off)
					}
					e := newEntry(ev, tc.subject)
					if want := stagedRows(ak, sk, e.marshal()); !bytes.Equal(r.val, want) {
						t.Fatalf("value\n got %x\nwant %x", r.val, want)
					}
					if want := binary.BigEndian.AppendUint64(nil, pos.off+5); !bytes.Equal(r.key, want) {
						t.Fatalf("key = %x, want %x", r.key, want)
					}
					gak, gsk, idx, err := parseStaged(r.val)
					if err != nil || !bytes.Equal(gak, ak) || !bytes.Equal(gsk, sk) || !bytes.Equal(idx, e.marshal()) {
						t.Fatalf("parseStaged() = %x, %x, %x, %v", gak, gsk, idx, err)
					}
				}
			})
		}
	}
}

// TestArenaSlicesStayApart checks that slices handed out by an arena never
// share bytes, whatever their sizes, so that filling one cannot change
// another that bbolt still holds.
func TestArenaSlicesStayApart(t *testing.T) {
	var a arena
	var got [][]byte
	for i, n := range []int{12, 0, arenaChunk - 20, 30, arenaChunk + 5, 1, minRecordRoom} {
		b := a.take(n)
		if len(b) != 0 || cap(b) != n {
			t.Fatalf("take(%d) = len %d cap %d", n, len(b), cap(b))
		}
		b = append(b, bytes.Repeat([]byte{byte(i + 1)}, n)...)
		got = append(got, b)
	}
	for i := range 40 {
		ev := &ingestionv1.Event{MessageId: strings.Repeat("r", i*50)}
		b, err := a.record(ev)
		if err != nil {
			t.Fatal(err)
		}
		if cap(b) != len(b) {
			t.Fatalf("record %d: cap %d > len %d would let an append overwrite the arena", i, cap(b), len(b))
		}
		got = append(got, b)
		want, _ := marshalEvent(ev)
		if !bytes.Equal(b, want) {
			t.Fatalf("record %d differs from marshalEvent", i)
		}
	}
	for i, b := range got[:7] {
		if !bytes.Equal(b, bytes.Repeat([]byte{byte(i + 1)}, len(b))) {
			t.Fatalf("slice %d was overwritten", i)
		}
	}
	for i, b := range got[7:] {
		want, _ := marshalEvent(&ingestionv1.Event{MessageId: strings.Repeat("r", i*50)})
		if !bytes.Equal(b, want) {
			t.Fatalf("record %d was overwritten", i)
		}
	}
}

// TestFlushIndexesPositionKeyedRows checks that staged rows written by an
// earlier binary, keyed by log position, are indexed together with rows
// keyed by sequence, since a file may hold both after an upgrade: by a
// reader's flush, and by an index pass, which finds the snapshot it read
// Legacy and flushes instead (internal/app's indexPass).
func TestFlushIndexesPositionKeyedRows(t *testing.T) {
	for name, flush := range map[string]func(*testing.T, *pkgstore.DB, *Store){
		"flush": func(t *testing.T, db *pkgstore.DB, s *Store) { flushAll(t, db, s, 2) },
		"indexPass": func(t *testing.T, db *pkgstore.DB, s *Store) {
			var snap *Staged
			if err := db.View(func(tx *pkgstore.Tx) error {
				var err error
				snap, err = s.ReadStaged(tx, 200000)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !snap.Legacy() {
				t.Fatal("a snapshot holding a position-keyed row is not Legacy")
			}
			flushAll(t, db, s, 20000)
		},
	} {
		t.Run(name, func(t *testing.T) { testFlushIndexesPositionKeyedRows(t, flush) })
	}
}

// flushAll flushes every staged row, chunk per transaction, as readers do.
func flushAll(t *testing.T, db *pkgstore.DB, s *Store, chunk int) {
	t.Helper()
	for more := true; more; {
		if err := db.Update(func(tx *pkgstore.Tx) error {
			w, err := s.Writer(tx)
			if err != nil {
				return err
			}
			more, err = w.FlushStaged(chunk)
			return err
		}); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
}

// rowCounts counts the rows of the staged, accounts and subjects buckets.
func rowCounts(t *testing.T, db *pkgstore.DB, s *Store) (staged, accounts, subjects int) {
	t.Helper()
	var c Counts
	if err := db.View(func(tx *pkgstore.Tx) error {
		c = s.Counts(tx)
		return nil
	}); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return c.Staged, c.Timeline, c.Subjects
}

func testFlushIndexesPositionKeyedRows(t *testing.T, flush func(*testing.T, *pkgstore.DB, *Store)) {
	db := storetest.Open(t)
	s, err := Open(db, Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	// An old row for an event logged at 0/900, as the previous layout keyed it.
	old := &ingestionv1.Event{MessageId: "old", UserId: "u-old", AccountId: "acme", Event: "x", Timestamp: timestamppb.New(t0)}
	e := newEntry(old, "u-old")
	val := stagedRows(accountKey("w", "acme", t0, 0, 900), subjectKey("w", "u-old", 0, 900), e.marshal())
	if err := db.Update(func(tx *pkgstore.Tx) error {
		w, err := s.Writer(tx)
		if err != nil {
			return err
		}
		return w.staged.Put(position(nil, 0, 900), val)
	}); err != nil {
		t.Fatal(err)
	}
	// Three events of u in acme, staged as ingest stages them.
	for i := range 3 {
		ev := &ingestionv1.Event{Workspace: "w", MessageId: fmt.Sprint("m", i), UserId: "u", AccountId: "acme", Event: "x", Timestamp: timestamppb.New(t0)}
		if err := db.Update(func(tx *pkgstore.Tx) error {
			w, err := s.Writer(tx)
			if err != nil {
				return err
			}
			var enc Encoder
			rec, err := enc.Record("w", "u", ev)
			if err != nil {
				return err
			}
			_, err = w.Append(uint32(i), &rec)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if staged, _, _ := rowCounts(t, db, s); staged != 4 {
		t.Fatalf("staged rows = %d, want 4", staged)
	}
	flush(t, db, s)
	if staged, acc, sub := rowCounts(t, db, s); staged != 0 || acc != 4 || sub != 4 {
		t.Fatalf("after flush: staged, accounts, subjects = %d, %d, %d; want 0, 4, 4", staged, acc, sub)
	}
	err = db.View(func(tx *pkgstore.Tx) error {
		if tx.Bolt().Bucket(bucketAccounts).Get(accountKey("w", "acme", t0, 0, 900)) == nil {
			t.Error("the position-keyed row is missing from the timeline index")
		}
		if tx.Bolt().Bucket(bucketSubjects).Get(subjectKey("w", "u-old", 0, 900)) == nil {
			t.Error("the position-keyed row is missing from the subject index")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
