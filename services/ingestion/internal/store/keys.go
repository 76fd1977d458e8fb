package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store/wire"
	"google.golang.org/protobuf/encoding/protowire"
)

// Keys are built from length-prefixed strings (uvarint length, then bytes) and
// big-endian fixed-width numbers. Length prefixes make the encoding
// prefix-free, so a scan of key(ws, "acme") never runs into "acme2", whatever
// bytes ids contain.

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// key joins length-prefixed parts.
func key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 2
	}
	b := make([]byte, 0, n+12)
	for _, p := range parts {
		b = appendStr(b, p)
	}
	return b
}

// keySize is len(key(parts...)).
func keySize(parts ...string) int {
	n := 0
	for _, p := range parts {
		n += uvarintLen(len(p)) + len(p)
	}
	return n
}

// appendKey appends key(parts...) to b.
func appendKey(b []byte, parts ...string) []byte {
	for _, p := range parts {
		b = appendStr(b, p)
	}
	return b
}

func uvarintLen(n int) int { return protowire.SizeVarint(uint64(n)) }

// arena hands out byte slices carved from shared chunks, so that the keys
// and values of one batch cost a few allocations instead of several per
// event. Slices are never reused: bbolt holds on to put values until the
// commit. A nil arena allocates every slice on its own.
type arena struct{ buf []byte }

const arenaChunk = 16 << 10

// take returns an empty slice with capacity n: appending up to n bytes to
// it stays in place and touches nothing handed out before or after.
func (a *arena) take(n int) []byte {
	if a == nil {
		return make([]byte, 0, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, arenaChunk))
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l : l+n]
}

// key is key(parts...) carved from the arena.
func (a *arena) key(parts ...string) []byte {
	return appendKey(a.take(keySize(parts...)), parts...)
}

// minRecordRoom is the free space below which record starts a new chunk
// rather than overflowing the current one.
const minRecordRoom = 1 << 10

// record encodes ev's log record into the arena. An event larger than the
// room left gets an array of its own from append.
func (a *arena) record(ev *ingestionv1.Event) ([]byte, error) {
	if cap(a.buf)-len(a.buf) < minRecordRoom {
		a.buf = make([]byte, 0, arenaChunk)
	}
	l := len(a.buf)
	b, err := wire.AppendLogRecord(a.buf[l:l], ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event %q: %w", ev.GetMessageId(), err)
	}
	if len(b) <= cap(a.buf)-l {
		// Encoded in place (append never outgrew the chunk).
		a.buf = a.buf[:l+len(b)]
	}
	return b[:len(b):len(b)], nil
}

// positionLen is the length of an encoded log position.
const positionLen = 12

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// sortableSeconds maps Unix seconds to a uint64 whose byte order is time order,
// including before 1970.
func sortableSeconds(sec int64) uint64 { return uint64(sec) ^ (1 << 63) }

// position appends a log position (partition, offset).
func position(b []byte, p uint32, off uint64) []byte { return appendU64(appendU32(b, p), off) }

// parsePosition reads the 12-byte position at the end of k.
func parsePosition(k []byte) (uint32, uint64, error) {
	if len(k) < 12 {
		return 0, 0, errors.New("index key too short")
	}
	t := k[len(k)-12:]
	return binary.BigEndian.Uint32(t), binary.BigEndian.Uint64(t[4:]), nil
}

// entry is the index value kept for every logged event: enough to filter a
// timeline and to find every index row again when a subject is deleted,
// without reading the log.
type entry struct {
	MessageID string
	Account   string
	Subject   string
	Name      string
	Source    string
	Time      time.Time
}

func (e *entry) marshal() []byte { return e.appendTo(make([]byte, 0, e.size())) }

// size is len(e.marshal()).
func (e *entry) size() int {
	return keySize(e.MessageID, e.Account, e.Subject, e.Name, e.Source) + 12
}

func (e *entry) appendTo(b []byte) []byte {
	b = appendStr(b, e.MessageID)
	b = appendStr(b, e.Account)
	b = appendStr(b, e.Subject)
	b = appendStr(b, e.Name)
	b = appendStr(b, e.Source)
	b = appendU64(b, uint64(e.Time.Unix()))
	b = appendU32(b, uint32(e.Time.Nanosecond()))
	return b
}

func (e *entry) unmarshal(b []byte) error {
	for _, dst := range []*string{&e.MessageID, &e.Account, &e.Subject, &e.Name, &e.Source} {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return errors.New("decode index entry: truncated string")
		}
		*dst = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	if len(b) != 12 {
		return fmt.Errorf("decode index entry: %d trailing bytes, want 12", len(b))
	}
	e.Time = time.Unix(int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint32(b[8:]))).UTC()
	return nil
}

// accountKey is the timeline index key: (workspace, account, event second,
// partition, offset).
func accountKey(ws, account string, t time.Time, p uint32, off uint64) []byte {
	b := appendU64(key(ws, account), sortableSeconds(t.Unix()))
	return position(b, p, off)
}

// subjectKey is the per-user index key: (workspace, subject, partition, offset).
func subjectKey(ws, subject string, p uint32, off uint64) []byte {
	return position(key(ws, subject), p, off)
}
