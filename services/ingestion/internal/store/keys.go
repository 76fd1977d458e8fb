package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
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

func (e *entry) marshal() []byte {
	b := make([]byte, 0, 12+len(e.MessageID)+len(e.Account)+len(e.Subject)+len(e.Name)+len(e.Source)+10)
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
