package store_test

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/store"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		cause    error
		diskFull bool
		msg      string
	}{
		{&fs.PathError{Op: "write", Path: "/data/ingestion.db", Err: syscall.ENOSPC}, true, "storage write failed: disk full"},
		{fmt.Errorf("pwrite: %w", syscall.EDQUOT), true, "storage write failed: disk full"},
		{&fs.PathError{Op: "fdatasync", Path: "/data/ingestion.db", Err: syscall.EIO}, false, "storage write failed: I/O error"},
	}
	for _, tc := range tests {
		err := error(&store.WriteError{Err: tc.cause})
		var we *store.WriteError
		if !errors.As(fmt.Errorf("commit batch: %w", err), &we) || we.DiskFull() != tc.diskFull {
			t.Errorf("%v: DiskFull = %v, want %v", tc.cause, we != nil && we.DiskFull(), tc.diskFull)
		}
		if err.Error() != tc.msg {
			t.Errorf("%v: message %q, want %q (and no path)", tc.cause, err.Error(), tc.msg)
		}
		if !errors.Is(err, apierr.ErrUnavailable) || !errors.Is(err, tc.cause) {
			t.Errorf("%v: does not match ErrUnavailable and its cause", tc.cause)
		}
	}
}
