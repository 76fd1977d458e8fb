package admit

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestBody(t *testing.T) {
	tests := []struct {
		name      string
		bytes     int64 // the controller's overall bound
		other     int64 // held by another request
		bodyLen   int
		step      int64
		wantRead  int  // bytes read before the end or the refusal
		wantShed  bool // the read fails with ResourceExhausted
		wantBytes int64
	}{
		{name: "fits", bytes: 100, bodyLen: 50, step: 16, wantRead: 50, wantBytes: 64},
		{name: "ends exactly at a step", bytes: 32, bodyLen: 32, step: 16, wantRead: 32, wantBytes: 32},
		{name: "longer than the bound", bytes: 100, bodyLen: 1000, step: 16, wantRead: 100, wantShed: true, wantBytes: 100},
		{name: "refused before a byte when others hold the bytes", bytes: 100, other: 90, bodyLen: 50, step: 16, wantRead: 0, wantShed: true},
		{name: "empty", bytes: 100, bodyLen: 0, step: 16, wantRead: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New("test", Limits{Bytes: tt.bytes}, clock.NewManual(t0))
			if tt.other > 0 {
				o, err := c.TryAcquire("", tt.other)
				if err != nil {
					t.Fatal(err)
				}
				defer o.Release()
			}
			tk, err := c.TryAcquire("", 0)
			if err != nil {
				t.Fatal(err)
			}
			// One byte at a time, as a slow chunked upload arrives.
			src := io.NopCloser(iotest.OneByteReader(bytes.NewReader(make([]byte, tt.bodyLen))))
			b := Body(src, tk, 0, tt.step)
			got, err := io.ReadAll(b)
			if len(got) != tt.wantRead {
				t.Errorf("read %d bytes, want %d", len(got), tt.wantRead)
			}
			if tt.wantShed != (status.Code(err) == codes.ResourceExhausted) || (!tt.wantShed && err != nil) {
				t.Errorf("ReadAll error %v, want shed %v", err, tt.wantShed)
			}
			if n := tk.Bytes(); n != tt.wantBytes {
				t.Errorf("ticket holds %d bytes, want %d", n, tt.wantBytes)
			}
			if _, err2 := b.Read(make([]byte, 1)); tt.wantShed && !errors.Is(err2, err) {
				t.Errorf("read after the refusal = %v, want the same refusal", err2)
			}
			_ = b.Close()
			tk.Release()
		})
	}
}

func TestBodyAdmittedBytesAreNotChargedAgain(t *testing.T) {
	c := New("test", Limits{Bytes: 10}, clock.NewManual(t0))
	tk, err := c.TryAcquire("", 10) // a Content-Length of 10, admitted up front
	if err != nil {
		t.Fatal(err)
	}
	b := Body(io.NopCloser(bytes.NewReader(make([]byte, 10))), tk, 10, 16)
	if got, err := io.ReadAll(b); err != nil || len(got) != 10 {
		t.Errorf("ReadAll = %d bytes, %v; want the 10 admitted and EOF although the bound is full", len(got), err)
	}
	tk.Release()
}
