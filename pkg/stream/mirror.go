package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
)

// ErrDiverged means a mirror's destination does not continue its source:
// it is ahead of the local log (the local file was lost or replaced), or
// it gave a record another offset than the local log did. Copying stops:
// writing on would put different records at the same offsets.
var ErrDiverged = errors.New("the replicated log does not continue the local log")

// MirrorOptions configure NewMirror.
type MirrorOptions struct {
	// Clock drives the retry backoff (default the wall clock).
	Clock clock.Clock
	// Logger receives retried copy errors (default slog.Default()).
	Logger *slog.Logger
}

// Mirror copies a local Log, partition by partition and in offset order,
// into another Backend (a replicated one), so that the destination holds
// every record at the offset the local log gave it. A producer commits its
// records to the local log in the transaction that decides them (dedup,
// indexes), then waits (Wait) for the destination to hold them before
// acknowledging its caller: the local log is the outbox, the destination
// is what consumers read (ADR 0021).
//
// A record deleted locally before it was copied (right to be forgotten)
// is copied as an empty record, which keeps the offsets aligned;
// jetlog serves an empty record as a gap.
type Mirror struct {
	src  *Log
	dst  Backend
	opts MirrorOptions

	mu    sync.Mutex
	acked []uint64      // by partition: the destination's head as copied
	wake  chan struct{} // closed when any acked moves or err is set
	err   error         // set once copying cannot go on
}

// NewMirror returns a mirror of src into dst. It refuses a destination
// ahead of the local log, and a local log whose early records retention
// already removed while the destination is empty (they could not be
// copied at their offsets).
func NewMirror(src *Log, dst Backend, opts MirrorOptions) (*Mirror, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if src.Partitions() != dst.Partitions() {
		return nil, fmt.Errorf("mirror log %q: %d partitions locally, %d in %q", src.Name(), src.Partitions(), dst.Partitions(), dst.Name())
	}
	m := &Mirror{src: src, dst: dst, opts: opts, acked: make([]uint64, src.Partitions()), wake: make(chan struct{})}
	for p := range src.Partitions() {
		h, local := dst.Head(p), src.Head(p)
		if h > local {
			return nil, fmt.Errorf("%w: partition %d of %q is at offset %d, the local log %q only at %d: the local file is not the one that wrote it (lost or replaced); restoring it from the stream is not built yet", ErrDiverged, p, dst.Name(), h, src.Name(), local)
		}
		if f := src.First(p); h+1 < f {
			return nil, fmt.Errorf("%w: partition %d of %q ends at offset %d, but the local log %q starts at %d (retention removed the records between)", ErrDiverged, p, dst.Name(), h, src.Name(), f)
		}
		m.acked[p] = h
	}
	return m, nil
}

// Acked returns the destination's head of partition p as far as the mirror
// has copied.
func (m *Mirror) Acked(p uint32) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(p) >= len(m.acked) {
		return 0
	}
	return m.acked[p]
}

// Run copies until ctx ends, retrying a failed append with backoff (50 ms
// doubling to 5 s). It returns an error only when copying cannot go on
// (ErrDiverged, or the destination fenced this writer off).
func (m *Mirror) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for p := range m.src.Partitions() {
		g.Go(func() error { return m.runPartition(ctx, p) })
	}
	err := g.Wait()
	if ctx.Err() != nil && !errors.Is(err, ErrDiverged) && !errors.Is(err, ErrFenced) {
		return nil
	}
	return err
}

func (m *Mirror) runPartition(ctx context.Context, p uint32) error {
	const first = 50 * time.Millisecond
	backoff := first
	for {
		before := m.Acked(p)
		err := m.copy(ctx, p)
		if m.Acked(p) > before {
			// Progress since the last failure: this one starts the backoff
			// over, so that failovers far apart do not add up.
			backoff = first
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrDiverged) || errors.Is(err, ErrFenced) {
			m.fail(err)
			return err
		}
		m.opts.Logger.Warn("copying the log to its replicated backend failed; retrying", "log", m.src.Name(), "backend", m.dst.Name(), "partition", p, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-m.opts.Clock.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// copy appends to the destination everything the local log has after what
// the destination holds, then follows new local commits, until an append
// fails or ctx ends.
func (m *Mirror) copy(ctx context.Context, p uint32) error {
	for {
		wake := m.src.waitChan(p)
		from := m.Acked(p) + 1
		recs, head, err := m.src.read(p, from, m.src.opts.ReadBatch)
		if err != nil {
			return err
		}
		var data [][]byte
		next := from
		for _, r := range recs {
			for ; next < r.Offset; next++ {
				data = append(data, []byte{}) // deleted before it was copied
			}
			data = append(data, r.Data)
			next++
		}
		if len(recs) == 0 {
			for ; next <= head; next++ {
				data = append(data, []byte{})
			}
		}
		if len(data) == 0 {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var first uint64
		if at, ok := m.dst.(appenderAt); ok {
			first, err = at.AppendAt(ctx, p, from, data...)
		} else {
			first, err = m.dst.Append(ctx, p, data...)
		}
		if err != nil {
			return fmt.Errorf("append offsets %d-%d of partition %d to %q: %w", from, next-1, p, m.dst.Name(), err)
		}
		if first != from {
			return fmt.Errorf("%w: partition %d of %q took offsets %d-%d at %d", ErrDiverged, p, m.dst.Name(), from, next-1, first)
		}
		m.advance(p, next-1)
	}
}

// appenderAt is a Backend that appends at a given offset, skipping records
// it already holds from this writer (jetlog): a copy retried after a lost
// acknowledgement then neither duplicates nor misplaces records.
type appenderAt interface {
	AppendAt(ctx context.Context, p uint32, at uint64, data ...[]byte) (uint64, error)
}

func (m *Mirror) advance(p uint32, off uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off > m.acked[p] {
		m.acked[p] = off
		close(m.wake)
		m.wake = make(chan struct{})
	}
}

func (m *Mirror) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
		close(m.wake)
		m.wake = make(chan struct{})
	}
}

// Wait returns once the destination holds every record the local log had
// committed when Wait was called, in every partition: a producer calls it
// after its commit and before acknowledging, so an acknowledgement (also
// one that reports a duplicate of an earlier record) means replicated.
// It fails with an error matching apierr.ErrUnavailable when ctx ends
// first, and with the mirror's own error once it stopped.
func (m *Mirror) Wait(ctx context.Context) error {
	n := m.src.Partitions()
	target := make([]uint64, n)
	for p := range n {
		target[p] = m.src.Head(p)
	}
	for {
		m.mu.Lock()
		wake, err := m.wake, m.err
		behind := -1
		for p := range n {
			if m.acked[p] < target[p] {
				behind = int(p)
				break
			}
		}
		m.mu.Unlock()
		if behind < 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: the log is not being replicated: %w", apierr.ErrUnavailable, err)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("%w: partition %d of the log is not replicated to %q yet (%w)", apierr.ErrUnavailable, behind, m.dst.Name(), ctx.Err())
		}
	}
}

// ErrFenced means the backend refused an append because another writer
// appended to the partition since this one last did: this writer is
// deposed and must not write again until it has taken ownership anew.
var ErrFenced = apierr.FailedPrecondition("another writer appended to this log partition: this writer is fenced off")
