package stream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-dev/cairn/pkg/failpoint"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// The failpoint test re-executes this test binary as an appender or a
// consumer that the armed failpoint kills.
const (
	envFailChild = "CAIRN_STREAM_FAILPOINT_CHILD" // append or consume
	envFailDir   = "CAIRN_STREAM_FAILPOINT_DIR"
)

const failRecords = 10

// TestFailpointChild is the child's body; in a normal run it skips.
func TestFailpointChild(t *testing.T) {
	role, dir := os.Getenv(envFailChild), os.Getenv(envFailDir)
	if role == "" {
		t.Skip("runs only as the child of TestFailpointKill")
	}
	if err := failChildRun(role, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(0)
}

func failChildRun(role, dir string) error {
	ctx := context.Background()
	if role == "append" {
		db, err := store.Open(filepath.Join(dir, "log.db"), store.Options{SchemaVersion: 1})
		if err != nil {
			return err
		}
		l, err := stream.OpenLog(db, "events", stream.LogOptions{})
		if err != nil {
			return err
		}
		for i := range failRecords {
			if _, err := l.Append(ctx, 0, fmt.Appendf(nil, "r%d", i+1)); err != nil {
				return err
			}
		}
		return db.Close()
	}
	// consume: the upstream log (written by the parent) is served one
	// record at a time, each only once the one before is applied, so
	// that every transaction applies exactly one record and the n-th hit
	// of a cursor point is the n-th record.
	up, err := store.Open(filepath.Join(dir, "up.db"), store.Options{SchemaVersion: 1, NoSync: true})
	if err != nil {
		return err
	}
	upLog, err := stream.OpenLog(up, "events", stream.LogOptions{})
	if err != nil {
		return err
	}
	db, err := store.Open(filepath.Join(dir, "down.db"), store.Options{SchemaVersion: 1})
	if err != nil {
		return err
	}
	var c *stream.Consumer[stream.Record]
	ready := make(chan struct{})
	c, err = stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
		Name: "events", DB: db, Partitions: []uint32{0}, Linger: -1,
		Source: func(ctx context.Context, p uint32, from uint64) (stream.Subscription[stream.Record], error) {
			<-ready
			return &stepSub{ctx: ctx, c: c, l: upLog, next: from}, nil
		},
		Offset: func(r stream.Record) uint64 { return r.Offset },
		Apply: func(tx *store.Tx, _ uint32, recs []stream.Record) error {
			b, err := tx.Bucket("applied")
			if err != nil {
				return err
			}
			for _, r := range recs {
				if err := b.Put(store.U64(r.Offset), r.Data); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	close(ready)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	if err := c.WaitFor(ctx, 0, failRecords); err != nil {
		return err
	}
	cancel()
	return db.Close()
}

// stepSub yields the upstream record at next once the consumer has applied
// the one before it.
type stepSub struct {
	ctx  context.Context
	c    *stream.Consumer[stream.Record]
	l    *stream.Log
	next uint64
}

func (s *stepSub) Recv() ([]stream.Record, uint64, error) {
	if err := s.c.WaitFor(s.ctx, 0, s.next-1); err != nil {
		return nil, 0, err
	}
	recs, err := s.l.Read(0, s.next, 1)
	if err != nil {
		return nil, 0, err
	}
	if len(recs) == 0 {
		<-s.ctx.Done() // the parent wrote failRecords; nothing more comes
		return nil, 0, s.ctx.Err()
	}
	s.next++
	return recs, s.l.Head(0), nil
}

// TestFailpointKill arms each stream failpoint in a child and checks where
// the kill -9 landed: at the third hit of a "before" point the third
// append (or the third record's state and cursor) never committed, at the
// third hit of an "after" point it is on the disk.
func TestFailpointKill(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	for _, tc := range []struct {
		role, spec string
		want       uint64 // log head, or cursor and records applied, after the kill
	}{
		{"append", "stream/append-before-commit=kill@3", 2},
		{"append", "stream/append-after-commit=kill@3", 3},
		{"consume", "stream/cursor-before-commit=kill@3", 2},
		{"consume", "stream/cursor-after-commit=kill@3", 3},
		{"consume", "stream/cursor-after-commit=kill@1", 1},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			dir := t.TempDir()
			if tc.role == "consume" {
				writeUpstream(t, filepath.Join(dir, "up.db"))
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestFailpointChild$")
			cmd.Env = append(os.Environ(), envFailChild+"="+tc.role, envFailDir+"="+dir, failpoint.Env+"="+tc.spec)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want killed by SIGKILL\n%s", err, out)
			}
			if want := "failpoint " + strings.Split(tc.spec, "=")[0] + " fired"; !strings.Contains(string(out), want) {
				t.Errorf("child's stderr %q does not say %q", out, want)
			}
			file := "log.db"
			if tc.role == "consume" {
				file = "down.db"
			}
			path := filepath.Join(dir, file)
			if err := store.Check(path); err != nil {
				t.Fatal(err)
			}
			db, err := store.Open(path, store.Options{SchemaVersion: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if tc.role == "append" {
				l, err := stream.OpenLog(db, "events", stream.LogOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if h := l.Head(0); h != tc.want {
					t.Errorf("log head %d after the kill, want %d", h, tc.want)
				}
				return
			}
			var cursor uint64
			var applied int
			err = db.View(func(tx *store.Tx) error {
				var err error
				if cursor, err = stream.ReadCursor(tx, "events", 0); err != nil {
					return err
				}
				if b, _ := tx.Bucket("applied"); b != nil {
					applied = b.Stats().KeyN
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if cursor != tc.want || uint64(applied) != tc.want {
				t.Errorf("after the kill: cursor %d and %d records applied, want %d and %d", cursor, applied, tc.want, tc.want)
			}
		})
	}
}

func writeUpstream(t *testing.T, path string) {
	t.Helper()
	db, err := store.Open(path, store.Options{SchemaVersion: 1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := stream.OpenLog(db, "events", stream.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range failRecords {
		if _, err := l.Append(t.Context(), 0, fmt.Appendf(nil, "r%d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
}
