package admit

import "io"

// Body wraps r, a request body of which t already holds the first
// admitted bytes (0 for a chunked body, whose length is unknown), so that
// what is read beyond them is charged to t before it is read: in steps of
// step bytes (fewer near a bound), without waiting. When the bounds have no room left the read
// fails with the shed error (ResourceExhausted with RetryInfo), so a body of
// unknown length is refused before it is buffered. (A body with a
// Content-Length needs no wrapping: admit that length, and net/http never
// reads past it.)
func Body(r io.ReadCloser, t *Ticket, admitted, step int64) io.ReadCloser {
	if step <= 0 {
		step = 32 << 10
	}
	return &body{r: r, t: t, allowed: admitted, step: step}
}

type body struct {
	r             io.ReadCloser
	t             *Ticket
	read, allowed int64
	step          int64
	err           error
	// peek holds the byte read to learn whether the body goes on past its
	// allowance; pending says it is not yet returned.
	peek    [1]byte
	pending bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.read >= b.allowed {
		// A body that ends exactly here needs no more room: read one byte
		// to tell before charging for more.
		if !b.pending {
			if err := b.readPeek(); err != nil {
				return 0, err
			}
		}
		n, err := b.t.Grow(b.step)
		if err != nil {
			b.err = err
			return 0, err
		}
		b.allowed += n
	}
	if b.pending {
		p[0], b.pending = b.peek[0], false
		b.read++
		return 1, nil
	}
	if room := b.allowed - b.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// readPeek reads one byte into peek, or returns the body's end (io.EOF) or
// error.
func (b *body) readPeek() error {
	for {
		n, err := b.r.Read(b.peek[:])
		if n > 0 {
			b.pending = true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (b *body) Close() error { return b.r.Close() }
