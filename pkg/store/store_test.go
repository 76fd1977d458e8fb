package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	tests := []struct {
		name    string
		version uint32
		wantErr bool
		migrate bool
	}{
		{name: "create at v1", version: 1},
		{name: "reopen same version", version: 1},
		{name: "upgrade runs migration", version: 2, migrate: true},
		{name: "older binary refused", version: 1, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			db, err := store.Open(path, store.Options{NoSync: true, SchemaVersion: tc.version, Migrations: map[uint32]func(*bbolt.Tx) error{
				2: func(*bbolt.Tx) error { ran = true; return nil },
			}})
			if tc.wantErr {
				if err == nil {
					db.Close()
					t.Fatal("want error for a newer file, got nil")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if ran != tc.migrate {
				t.Errorf("migration ran = %v, want %v", ran, tc.migrate)
			}
			v, err := db.SchemaVersion()
			if err != nil || v != tc.version {
				t.Errorf("SchemaVersion = %d, %v; want %d", v, err, tc.version)
			}
		})
	}
}

func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := store.Open(path, store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// bbolt uses flock, which is per open file description, so a second open
	// in the same process contends like a second process would.
	_, err = store.Open(path, store.Options{NoSync: true, SchemaVersion: 1, LockTimeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("second open succeeded; want lock timeout")
	}
}

func TestBucketAndProto(t *testing.T) {
	db := storetest.Open(t)
	err := db.Update(func(tx *store.Tx) error {
		b, err := tx.Bucket("ws", "acme", "accounts")
		if err != nil {
			return err
		}
		return store.PutProto(b, store.U64(42), wrapperspb.String("hello"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *store.Tx) error {
		missing, err := tx.Bucket("ws", "nobody", "accounts")
		if err != nil || missing != nil {
			t.Errorf("missing bucket in read tx = %v, %v; want nil, nil", missing, err)
		}
		b, err := tx.Bucket("ws", "acme", "accounts")
		if err != nil {
			return err
		}
		var got wrapperspb.StringValue
		if err := store.GetProto(b, store.U64(42), &got); err != nil {
			return err
		}
		if got.Value != "hello" {
			t.Errorf("got %q", got.Value)
		}
		if err := store.GetProto(b, store.U64(7), &got); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing key err = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestU64SortsNumerically(t *testing.T) {
	for _, tc := range []struct{ a, b uint64 }{{1, 2}, {255, 256}, {1 << 40, 1<<40 + 1}} {
		if string(store.U64(tc.a)) >= string(store.U64(tc.b)) {
			t.Errorf("U64(%d) does not sort before U64(%d)", tc.a, tc.b)
		}
		if store.ParseU64(store.U64(tc.a)) != tc.a {
			t.Errorf("round trip of %d failed", tc.a)
		}
	}
}

func TestCommitGroupsConcurrentCallers(t *testing.T) {
	db := storetest.Open(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- db.Commit(context.Background(), func(tx *store.Tx) error {
				b, err := tx.Bucket("k")
				if err != nil {
					return err
				}
				return b.Put(store.U64(uint64(i)), []byte("v"))
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_ = db.View(func(tx *store.Tx) error {
		if got := tx.Bolt().Bucket([]byte("k")).Stats().KeyN; got != n {
			t.Errorf("keys = %d, want %d", got, n)
		}
		return nil
	})
}

func TestCommitIsolatesFailures(t *testing.T) {
	db := storetest.Open(t)
	boom := errors.New("boom")
	tests := []struct {
		name    string
		key     string
		fail    error
		panics  bool
		wantErr bool
	}{
		{name: "ok a", key: "a"},
		{name: "fails", key: "bad", fail: boom, wantErr: true},
		{name: "panics", key: "panic", panics: true, wantErr: true},
		{name: "ok b", key: "b"},
	}
	var wg sync.WaitGroup
	results := make([]error, len(tests))
	for i, tc := range tests {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = db.Commit(context.Background(), func(tx *store.Tx) error {
				b, err := tx.Bucket("k")
				if err != nil {
					return err
				}
				if err := b.Put([]byte(tc.key), []byte("v")); err != nil {
					return err
				}
				if tc.panics {
					panic("bad input")
				}
				return tc.fail
			})
		}(i)
	}
	wg.Wait()
	for i, tc := range tests {
		if (results[i] != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, wantErr %v", tc.name, results[i], tc.wantErr)
		}
	}
	_ = db.View(func(tx *store.Tx) error {
		b := tx.Bolt().Bucket([]byte("k"))
		for _, tc := range tests {
			present := b != nil && b.Get([]byte(tc.key)) != nil
			if present == tc.wantErr {
				t.Errorf("%s: key present = %v after commit error %v", tc.name, present, tc.wantErr)
			}
		}
		return nil
	})
}

func TestCommitAfterClose(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(context.Background(), func(*store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
}

// BenchmarkCommit compares group commit with one fsync per write, on a real
// (synced) file. Run: go test -run '^$' -bench Commit ./pkg/store
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []string{"group", "single"} {
		for _, conc := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", mode, conc*runtime.GOMAXPROCS(0)), func(b *testing.B) {
				db, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{SchemaVersion: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				val := make([]byte, 200)
				var seq uint64
				var mu sync.Mutex
				next := func() uint64 { mu.Lock(); defer mu.Unlock(); seq++; return seq }
				write := func(tx *store.Tx, k uint64) error {
					bk, err := tx.Bucket("bench")
					if err != nil {
						return err
					}
					return bk.Put(store.U64(k), val)
				}
				b.SetParallelism(conc)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						k := next()
						var err error
						if mode == "group" {
							err = db.Commit(context.Background(), func(tx *store.Tx) error { return write(tx, k) })
						} else {
							err = db.Update(func(tx *store.Tx) error { return write(tx, k) })
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			})
		}
	}
}
