package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Versions keeps the versioned definitions of one kind (journeys, health
// models, routing configuration, ...) for every workspace: each Put adds the
// next version of a definition id, versions are never changed or removed,
// and named active slots point at one (id, version) each. Every service
// that takes definitions as code stores them here, so that versioning,
// listing and activation behave the same everywhere.
//
// Layout: bucket "_versions"/kind holds ws NUL id NUL version(4 bytes, big
// endian) -> the definition's protobuf bytes; bucket "_active"/kind holds
// ws NUL slot -> id NUL version. Workspace, id and slot never hold NUL
// (apierr.CheckID refuses it).
type Versions[M proto.Message] struct {
	kind  string
	newFn func() M
}

// NewVersions returns the store for definitions of kind, whose messages
// newM allocates.
func NewVersions[M proto.Message](kind string, newM func() M) Versions[M] {
	return Versions[M]{kind: kind, newFn: newM}
}

// Pointer is an active slot's value.
type Pointer struct {
	// Slot names the pointer, e.g. a journey id, or "model".
	Slot string
	// ID and Version name the definition it points at.
	ID      string
	Version uint32
}

func (v Versions[M]) defs(tx *Tx) (*bbolt.Bucket, error)   { return tx.Bucket("_versions", v.kind) }
func (v Versions[M]) active(tx *Tx) (*bbolt.Bucket, error) { return tx.Bucket("_active", v.kind) }

func versionPrefix(ws, id string) []byte {
	k := make([]byte, 0, len(ws)+len(id)+6)
	k = append(k, ws...)
	k = append(k, 0)
	k = append(k, id...)
	return append(k, 0)
}

func versionKey(ws, id string, version uint32) []byte {
	return binary.BigEndian.AppendUint32(versionPrefix(ws, id), version)
}

// Latest returns the highest stored version of id, 0 when there is none.
func (v Versions[M]) Latest(tx *Tx, ws, id string) (uint32, error) {
	b, err := v.defs(tx)
	if err != nil || b == nil {
		return 0, err
	}
	prefix := versionPrefix(ws, id)
	c := b.Cursor()
	top := versionKey(ws, id, ^uint32(0))
	k, _ := c.Seek(top)
	switch {
	case k == nil:
		k, _ = c.Last()
	case !bytes.Equal(k, top):
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+4 {
		return 0, nil
	}
	return binary.BigEndian.Uint32(k[len(prefix):]), nil
}

// Put stores m as version of id. A version is written once: Put refuses
// one that exists.
func (v Versions[M]) Put(tx *Tx, ws, id string, version uint32, m M) error {
	if version == 0 {
		return fmt.Errorf("put %s %q: version 0", v.kind, id)
	}
	b, err := v.defs(tx)
	if err != nil {
		return fmt.Errorf("put %s %q v%d: %w", v.kind, id, version, err)
	}
	k := versionKey(ws, id, version)
	if b.Get(k) != nil {
		return fmt.Errorf("put %s %q v%d: version exists", v.kind, id, version)
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("put %s %q v%d: %w", v.kind, id, version, err)
	}
	return b.Put(k, raw)
}

// Get returns one version of id, or an error matching ErrNotFound.
func (v Versions[M]) Get(tx *Tx, ws, id string, version uint32) (M, error) {
	m := v.newFn()
	b, err := v.defs(tx)
	if err != nil {
		return m, fmt.Errorf("get %s %q v%d: %w", v.kind, id, version, err)
	}
	if err := GetProto(b, versionKey(ws, id, version), m); err != nil {
		return m, fmt.Errorf("get %s %q v%d: %w", v.kind, id, version, err)
	}
	return m, nil
}

// List calls fn with the versions of id, newest first, starting below
// before (0: from the newest), until fn returns false or an error.
func (v Versions[M]) List(tx *Tx, ws, id string, before uint32, fn func(version uint32, m M) (bool, error)) error {
	b, err := v.defs(tx)
	if err != nil || b == nil {
		return err
	}
	prefix := versionPrefix(ws, id)
	c := b.Cursor()
	var k, val []byte
	if before == 0 {
		k, val = c.Seek(append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff))
	} else {
		k, val = c.Seek(versionKey(ws, id, before))
	}
	if k == nil {
		k, val = c.Last()
	} else {
		k, val = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, val = c.Prev() {
		if len(k) != len(prefix)+4 {
			continue
		}
		m := v.newFn()
		if err := proto.Unmarshal(val, m); err != nil {
			return fmt.Errorf("decode %s %q: %w", v.kind, id, err)
		}
		more, err := fn(binary.BigEndian.Uint32(k[len(prefix):]), m)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// SetActive points slot at version of id.
func (v Versions[M]) SetActive(tx *Tx, ws, slot, id string, version uint32) error {
	b, err := v.active(tx)
	if err != nil {
		return fmt.Errorf("activate %s %q v%d: %w", v.kind, id, version, err)
	}
	return b.Put(slotKey(ws, slot), binary.BigEndian.AppendUint32(append([]byte(id), 0), version))
}

// Active returns what slot points at, or an error matching ErrNotFound.
func (v Versions[M]) Active(tx *Tx, ws, slot string) (Pointer, error) {
	p, ok, err := v.Find(tx, ws, slot)
	if err == nil && !ok {
		err = fmt.Errorf("active %s %q: %w", v.kind, slot, ErrNotFound)
	}
	return p, err
}

// Find is Active for hot paths: a slot that points nowhere is ok == false,
// not an error, so that a miss costs no allocation.
func (v Versions[M]) Find(tx *Tx, ws, slot string) (p Pointer, ok bool, err error) {
	b, err := v.active(tx)
	if err != nil || b == nil {
		return Pointer{}, false, err
	}
	p, ok = parsePointer(slot, b.Get(slotKey(ws, slot)))
	return p, ok, nil
}

// Actives lists the workspace's active slots in slot order.
func (v Versions[M]) Actives(tx *Tx, ws string) ([]Pointer, error) {
	b, err := v.active(tx)
	if err != nil || b == nil {
		return nil, err
	}
	prefix := append([]byte(ws), 0)
	var out []Pointer
	c := b.Cursor()
	for k, val := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, val = c.Next() {
		if p, ok := parsePointer(string(k[len(prefix):]), val); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// Workspaces lists, in order, the workspaces in which slot points at a
// version: those with a live definition of this kind.
func (v Versions[M]) Workspaces(tx *Tx, slot string) ([]string, error) {
	b, err := v.active(tx)
	if err != nil || b == nil {
		return nil, err
	}
	var out []string
	err = b.ForEach(func(k, _ []byte) error {
		if ws, s, ok := bytes.Cut(k, []byte{0}); ok && string(s) == slot {
			out = append(out, string(ws))
		}
		return nil
	})
	return out, err
}

func slotKey(ws, slot string) []byte { return append(append([]byte(ws), 0), slot...) }

func parsePointer(slot string, val []byte) (Pointer, bool) {
	i := bytes.IndexByte(val, 0)
	if i < 0 || len(val) != i+5 {
		return Pointer{}, false
	}
	return Pointer{Slot: slot, ID: string(val[:i]), Version: binary.BigEndian.Uint32(val[i+1:])}, true
}

// SameContent reports whether a and b, two messages of the same type,
// differ at most in the fields a new version gets when it is stored
// (version, created_at), so that applying the stored content again can be
// answered "unchanged" instead of storing a copy.
func SameContent(a, b proto.Message) bool {
	a, b = proto.Clone(a), proto.Clone(b)
	for _, m := range []protoreflect.Message{a.ProtoReflect(), b.ProtoReflect()} {
		for _, name := range []protoreflect.Name{"version", "created_at"} {
			if f := m.Descriptor().Fields().ByName(name); f != nil {
				m.Clear(f)
			}
		}
	}
	return proto.Equal(a, b)
}
