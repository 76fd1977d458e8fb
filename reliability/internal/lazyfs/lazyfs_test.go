package lazyfs_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/cairn-dev/cairn/reliability/internal/lazyfs"
)

// The bbolt test runs bbolt in a child process (this test binary again):
// bbolt reads through mmap, and a page fault served by a FUSE server in
// the same Go process can deadlock the runtime.
const envChild = "LAZYFS_TEST_BBOLT_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChild); dir != "" {
		if err := bboltChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mount mounts a lazyfs over a fresh backing dir, or skips the test where
// FUSE cannot be mounted.
func mount(t *testing.T) (l *lazyfs.FS, backing, mnt string) {
	t.Helper()
	if why := lazyfs.Available(); why != "" {
		t.Skip(why)
	}
	backing, mnt = t.TempDir(), t.TempDir()
	l, err := lazyfs.Mount(backing, mnt)
	if err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return l, backing, mnt
}

func pattern(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func TestCutDropsWhatWasNotSynced(t *testing.T) {
	l, backing, mnt := mount(t)

	// synced: 10,000 bytes fsynced, then overwritten at the start and
	// extended by 5,000 bytes without fsync.
	f, err := os.Create(filepath.Join(mnt, "synced"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pattern('a', 10000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern('b', 100), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern('c', 5000), 10000); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // close makes nothing durable
		t.Fatal(err)
	}
	// unsynced: written, never fsynced.
	if err := os.WriteFile(filepath.Join(mnt, "unsynced"), pattern('d', 3000), 0o600); err != nil {
		t.Fatal(err)
	}

	// Before the cut the mount shows every write, closed or not...
	got, err := os.ReadFile(filepath.Join(mnt, "synced"))
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(pattern('b', 100), pattern('a', 9900)...), pattern('c', 5000)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("read through the mount: %d bytes, want the unsynced writes over the synced file (%d bytes)", len(got), len(want))
	}
	if st, err := os.Stat(filepath.Join(mnt, "unsynced")); err != nil || st.Size() != 3000 {
		t.Fatalf("stat through the mount: %v %v, want size 3000", st, err)
	}
	// ...while the backing dir (the disk) holds only what was synced.
	if b, _ := os.ReadFile(filepath.Join(backing, "synced")); !bytes.Equal(b, pattern('a', 10000)) {
		t.Fatalf("backing file before the cut: %d bytes, want the 10,000 synced", len(b))
	}

	lost := l.Cut()
	if lost.Files != 2 || lost.Bytes != 5000+3000 {
		t.Errorf("cut lost %+v, want 2 files and 8,000 bytes of growth", lost)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "synced")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read after the cut: %v, want EIO", err)
	}
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(backing, "synced")); !bytes.Equal(b, pattern('a', 10000)) {
		t.Errorf("after the cut: synced file has %d bytes, want the 10,000 synced ones only", len(b))
	}
	// Creation is metadata, durable at once; the data was never synced.
	if st, err := os.Stat(filepath.Join(backing, "unsynced")); err != nil || st.Size() != 0 {
		t.Errorf("after the cut: unsynced file %v %v, want it present and empty", st, err)
	}
}

func TestSyncWritesThroughAndTruncateIsImmediate(t *testing.T) {
	l, backing, mnt := mount(t)
	p := filepath.Join(mnt, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(pattern('a', 9000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// Unsynced write in the last page, then a truncate into that page and
	// growth again: the cut-off part must read back as zeros.
	if _, err := f.WriteAt(pattern('b', 500), 8500); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8600); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(9000); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(pattern('a', 8500), pattern('b', 100)...), make([]byte, 400)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("after truncate and regrowth: got %d bytes differing from want %d", len(got), len(want))
	}
	if st, _ := os.Stat(filepath.Join(backing, "f")); st.Size() != 9000 {
		t.Errorf("truncate did not reach the backing file at once: size %d", st.Size())
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Cut()
	if b, _ := os.ReadFile(filepath.Join(backing, "f")); !bytes.Equal(b, want) {
		t.Errorf("after sync and cut: backing differs from what was synced")
	}
}

func TestRenameAndUnlinkKeepOverlaysApart(t *testing.T) {
	l, backing, mnt := mount(t)
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
	if err := os.WriteFile(a, pattern('a', 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, pattern('b', 7000), 0o600); err != nil {
		t.Fatal(err)
	}
	// a replaces b: b's unsynced pages must not show through a.
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(b); !bytes.Equal(got, pattern('a', 5000)) {
		t.Fatalf("after rename over: read %d bytes, want a's 5,000", len(got))
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	// A new file (it may reuse the inode number) starts empty.
	if err := os.WriteFile(filepath.Join(mnt, "c"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "c")); string(got) != "x" {
		t.Fatalf("new file reads %q, want x", got)
	}
	l.Cut()
	if _, err := os.Stat(filepath.Join(backing, "b")); !os.IsNotExist(err) {
		t.Errorf("unlink is durable at once, but b is still there: %v", err)
	}
}

// TestBbolt runs bbolt in a child on the mount: one file with fsync, one
// with NoSync, then a cut while the child is alive. Everything committed
// to the synced file must survive and pass bbolt's check; the NoSync
// file must lose its commits (the harness bites).
func TestBbolt(t *testing.T) {
	l, backing, mnt := mount(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mnt)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %q %v", sc.Text(), <-done)
	}
	lost := l.Cut()
	_ = cmd.Process.Kill()
	<-done
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cut lost %+v", lost)

	synced := countKeys(t, filepath.Join(backing, "synced.db"))
	if synced != childCommits {
		t.Errorf("synced.db holds %d keys after the cut, want all %d committed", synced, childCommits)
	}
	nosync := countKeys(t, filepath.Join(backing, "nosync.db"))
	if nosync >= childCommits {
		t.Errorf("nosync.db holds %d keys after the cut: the cut lost nothing written without fsync", nosync)
	}
	t.Logf("after the cut: synced.db %d/%d keys, nosync.db %d/%d", synced, childCommits, nosync, childCommits)
}

const childCommits = 300

// bboltChild commits childCommits transactions to each file, reads them
// back through mmap, says "ready" and waits to be killed.
func bboltChild(dir string) error {
	for _, f := range []struct {
		name   string
		noSync bool
	}{{"synced.db", false}, {"nosync.db", true}} {
		db, err := bbolt.Open(filepath.Join(dir, f.name), 0o600, &bbolt.Options{NoSync: f.noSync, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		for i := range childCommits {
			if err := db.Update(func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("k"))
				if err != nil {
					return err
				}
				return b.Put([]byte(strconv.Itoa(i)), bytes.Repeat([]byte{'v'}, 300))
			}); err != nil {
				return err
			}
		}
		if n, err := keys(db); err != nil || n != childCommits {
			return fmt.Errorf("%s reads back %d keys (%v)", f.name, n, err)
		}
		// Left open: the kill after the cut is the crash.
	}
	fmt.Println("ready")
	select {}
}

func keys(db *bbolt.DB) (int, error) {
	n := 0
	err := db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("k")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n, err
}

// countKeys opens a file after the cut, runs bbolt's check and counts keys.
func countKeys(t *testing.T, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		// A file whose creation was durable but whose first pages were
		// never synced is empty; bbolt opens it read-only as invalid.
		t.Logf("open %s: %v", filepath.Base(path), err)
		return 0
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Errorf("bbolt check of %s: %v", filepath.Base(path), err)
	}
	n, err := keys(db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
