package server

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
)

// A request flagged as gzip whose payload is not valid gzip (no gzip
// header, a stream cut short, a wrong checksum) is the client's error, but
// grpc-go answers it with Internal: it decompresses before the codec and
// any interceptor run, and fails the call itself. So the gzip compressor is
// replaced by checkedGzip, which never fails: it ends what it could
// decompress with a fault trailer (the reason, its length, and a random
// per-process key), and the codecs, which see the payload next, turn the
// trailer into InvalidArgument (server) or an error (client). Valid gzip
// passes through untouched.

// faultKey ends every fault trailer. It is random per process and never
// sent, so a client cannot make a request look like a gzip fault.
var faultKey = func() (k [16]byte) {
	_, _ = rand.Read(k[:]) // never fails (crypto/rand panics instead)
	return k
}()

// faultTrailer is the reason, its length (2 bytes) and faultKey.
func faultTrailer(reason string) []byte {
	if len(reason) > 200 {
		reason = reason[:200]
	}
	b := append([]byte(reason), 0, 0)
	binary.BigEndian.PutUint16(b[len(b)-2:], uint16(len(reason)))
	return append(b, faultKey[:]...)
}

// gzipFault returns the reason recorded in a payload that ends with a fault
// trailer. Checking costs a 16-byte comparison per message.
func gzipFault(b []byte) (string, bool) {
	k := len(b) - len(faultKey)
	if k < 2 || !bytes.Equal(b[k:], faultKey[:]) {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(b[k-2 : k]))
	if n > k-2 {
		return "", false
	}
	return string(b[k-2-n : k-2]), true
}

// gzipFaultSlice is gzipFault on a received payload, reading only its
// last bytes.
func gzipFaultSlice(data mem.BufferSlice) (string, bool) {
	total := data.Len()
	if total < len(faultKey)+2 {
		return "", false
	}
	// The key, then (only when it matches) the reason, copied from the
	// end of the payload without materializing the rest.
	var key [len(faultKey)]byte
	tail(data, key[:], total)
	if key != faultKey {
		return "", false
	}
	return gzipFault(data.Materialize())
}

// tail copies the last len(dst) bytes of data (of total length) into dst.
func tail(data mem.BufferSlice, dst []byte, total int) {
	skip := total - len(dst)
	off := 0
	for _, buf := range data {
		b := buf.ReadOnlyData()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		off += copy(dst[off:], b[skip:])
		skip = 0
	}
}

// faultReason says what is wrong with a gzip payload, from the error of the
// gzip reader.
func faultReason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "the payload is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the gzip stream is cut short"
	}
	return err.Error()
}

// checkedGzip is grpc-go's gzip compressor, whose Decompress never fails.
type checkedGzip struct{ encoding.Compressor }

func (c checkedGzip) Decompress(r io.Reader) (io.Reader, error) {
	d, err := c.Compressor.Decompress(r)
	if err != nil {
		return bytes.NewReader(faultTrailer(faultReason(err))), nil
	}
	return &faultReader{r: d}, nil
}

// faultReader passes decompressed bytes on until the gzip reader fails,
// then serves a fault trailer and ends.
type faultReader struct {
	r       io.Reader
	trailer []byte
	failed  bool
}

func (f *faultReader) Read(p []byte) (int, error) {
	if f.failed {
		if len(f.trailer) == 0 {
			return 0, io.EOF
		}
		n := copy(p, f.trailer)
		f.trailer = f.trailer[n:]
		return n, nil
	}
	n, err := f.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		f.failed, f.trailer = true, faultTrailer(faultReason(err))
		return n, nil
	}
	return n, err
}

// Close returns the gzip reader to grpc-go's pool.
func (f *faultReader) Close() error {
	if c, ok := f.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func init() {
	if c := encoding.GetCompressor(gzip.Name); c != nil {
		if _, done := c.(checkedGzip); !done {
			encoding.RegisterCompressor(checkedGzip{c})
		}
	}
}
