package store

import (
	"bytes"
	"fmt"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
)

// PutModel stores m as the next version of its id and sets m.Version.
func PutModel(tx *bbolt.Tx, ws string, m *healthv1.Model) error {
	b, err := bucket(tx, "models", ws)
	if err != nil {
		return err
	}
	prefix := key(m.GetId(), "")
	var last uint32
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		last = uint32(kv.ParseU64(k[len(prefix):]))
	}
	m.Version = last + 1
	if err := putProto(b, append(prefix, kv.U64(uint64(m.Version))...), m); err != nil {
		return fmt.Errorf("put model %q v%d: %w", m.GetId(), m.GetVersion(), err)
	}
	return nil
}

// GetModel loads one version of a model.
func GetModel(tx *bbolt.Tx, ws, id string, version uint32) (*healthv1.Model, error) {
	b, err := bucket(tx, "models", ws)
	if err != nil {
		return nil, err
	}
	m := &healthv1.Model{}
	if err := kv.GetProto(b, append(key(id, ""), kv.U64(uint64(version))...), m); err != nil {
		return nil, fmt.Errorf("get model %q v%d: %w", id, version, err)
	}
	return m, nil
}

// ListModels returns a model's versions, newest first, below version before
// (0 = from the newest), at most n.
func ListModels(tx *bbolt.Tx, ws, id string, before uint32, n int) ([]*healthv1.Model, error) {
	b, err := bucket(tx, "models", ws)
	if err != nil || b == nil {
		return nil, err
	}
	prefix := key(id, "")
	var out []*healthv1.Model
	c := b.Cursor()
	var k []byte
	if before == 0 {
		k, _ = c.Seek(key(id, "\xff"))
	} else {
		k, _ = c.Seek(append(append([]byte(nil), prefix...), kv.U64(uint64(before))...))
	}
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < n; k, _ = c.Prev() {
		m := &healthv1.Model{}
		if err := kv.GetProto(b, k, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// SetActive makes a model version the workspace's scoring model.
func SetActive(tx *bbolt.Tx, ws, id string, version uint32) error {
	b, err := bucket(tx, "active", ws)
	if err != nil {
		return err
	}
	return b.Put([]byte("model"), append(key(id, ""), kv.U64(uint64(version))...))
}

// Active returns the workspace's active model id and version; ErrNotFound
// when none was ever activated (the built-in default applies).
func Active(tx *bbolt.Tx, ws string) (string, uint32, error) {
	b, err := bucket(tx, "active", ws)
	if err != nil {
		return "", 0, err
	}
	if b == nil {
		return "", 0, ErrNotFound
	}
	v := b.Get([]byte("model"))
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return "", 0, ErrNotFound
	}
	return string(v[:i]), uint32(kv.ParseU64(v[i+1:])), nil
}

// Timer is a due account re-check.
type Timer struct {
	// Workspace and Account name the account.
	Workspace, Account string
	// Due is when the check is due.
	Due time.Time
}

// ArmTimer (re)schedules the account's daily check, replacing any earlier one.
func ArmTimer(tx *bbolt.Tx, ws, acct string, due time.Time) error {
	return NewWriter(tx, ws).ArmTimer(acct, due)
}

func timerKey(ws, acct string, due uint64) []byte {
	return append(kv.U64(due), key(ws, acct)...)
}

func deleteTimer(tx *bbolt.Tx, ws, acct string, due uint64) error {
	b, err := kv.Bucket(tx, "timers")
	if err != nil {
		return err
	}
	if err := b.Delete(timerKey(ws, acct, due)); err != nil {
		return fmt.Errorf("delete timer of %q: %w", acct, err)
	}
	return nil
}

// DueTimers lists up to n timers due at or before now, earliest first.
func DueTimers(tx *bbolt.Tx, now time.Time, n int) ([]Timer, error) {
	b, err := kv.Bucket(tx, "timers")
	if err != nil || b == nil {
		return nil, err
	}
	var out []Timer
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(out) < n; k, _ = c.Next() {
		due := int64(kv.ParseU64(k))
		if due > now.Unix() {
			break
		}
		rest := k[8:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			continue
		}
		out = append(out, Timer{Workspace: string(rest[:i]), Account: string(rest[i+1:]), Due: time.Unix(due, 0).UTC()})
	}
	return out, nil
}

// NextTimer returns the earliest due time, or false when no timer is armed.
func NextTimer(tx *bbolt.Tx) (time.Time, bool, error) {
	b, err := kv.Bucket(tx, "timers")
	if err != nil || b == nil {
		return time.Time{}, false, err
	}
	k, _ := b.Cursor().First()
	if k == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(int64(kv.ParseU64(k)), 0).UTC(), true, nil
}
