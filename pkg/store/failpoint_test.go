package store_test

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
	"time"

	"go.etcd.io/bbolt"

	"github.com/cairn-dev/cairn/pkg/failpoint"
	"github.com/cairn-dev/cairn/pkg/store"
)

// The failpoint test re-executes this test binary as a writer that the
// armed failpoint kills; these variables switch it into that role.
const (
	envFailChild = "CAIRN_STORE_FAILPOINT_CHILD" // the bbolt file
	envFailWrite = "CAIRN_STORE_FAILPOINT_WRITE" // commit, linger or update
)

const failWrites = 10

// TestFailpointChild is the child's body; in a normal run it skips.
func TestFailpointChild(t *testing.T) {
	path := os.Getenv(envFailChild)
	if path == "" {
		t.Skip("runs only as the child of TestFailpointKill")
	}
	db, err := store.Open(path, store.Options{SchemaVersion: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 1; i <= failWrites; i++ {
		put := func(tx *store.Tx) error {
			b, err := tx.Bucket("w")
			if err != nil {
				return err
			}
			return b.Put(store.U64(uint64(i)), []byte("v"))
		}
		switch os.Getenv(envFailWrite) {
		case "commit":
			err = db.Commit(context.Background(), put)
		case "linger":
			err = db.CommitLinger(context.Background(), time.Millisecond, put)
		default:
			err = db.Update(put)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
	}
	_ = db.Close()
	os.Exit(0)
}

// TestFailpointKill arms each store failpoint in a child that writes one
// key per transaction, and checks where the kill -9 landed: at the third
// hit of store/before-commit the third transaction is lost (it never
// committed), at the third hit of store/after-commit it is on the disk
// although its caller was never told.
func TestFailpointKill(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	for _, tc := range []struct {
		spec  string
		write string
		want  int // keys on the disk after the kill
	}{
		{"store/before-commit=kill@3", "commit", 2},
		{"store/after-commit=kill@3", "commit", 3},
		{"store/before-commit=kill@3", "linger", 2},
		{"store/after-commit=kill@3", "linger", 3},
		{"store/before-commit=kill@3", "update", 2},
		{"store/after-commit=kill@3", "update", 3},
		{"store/after-commit=kill@1", "update", 1},
	} {
		t.Run(tc.spec+"/"+tc.write, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.db")
			out, err := failChild(path, tc.write, tc.spec)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want killed by SIGKILL\n%s", err, out)
			}
			if want := "failpoint " + strings.Split(tc.spec, "=")[0] + " fired: kill at hit "; !strings.Contains(out, want) {
				t.Errorf("child's stderr %q does not say %q", out, want)
			}
			if err := store.Check(path); err != nil {
				t.Fatal(err)
			}
			if got := countKeys(t, path); got != tc.want {
				t.Errorf("%d keys on the disk after the kill, want %d", got, tc.want)
			}
		})
	}
}

// A CAIRN_FAILPOINTS that does not parse stops Open with a clear error.
func TestFailpointBadEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	path := filepath.Join(t.TempDir(), "w.db")
	out, err := failChild(path, "commit", "store/before-commit=explode@3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child: %v, want exit status 3 from a failed Open\n%s", err, out)
	}
	want := failpoint.Env + `: setting 1 "store/before-commit=explode@3": unknown action "explode" (known: kill, stop)`
	if !strings.Contains(out, want) {
		t.Errorf("child's error %q does not contain %q", out, want)
	}
}

func failChild(path, write, spec string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailpointChild$")
	cmd.Env = append(os.Environ(), envFailChild+"="+path, envFailWrite+"="+write, failpoint.Env+"="+spec)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func countKeys(t *testing.T, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("w")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
