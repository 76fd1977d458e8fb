package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// models keeps every workspace's model versions and its active model in
// the shared versioned-definitions store: kind "model", one active slot
// "model".
var models = kv.NewVersions("model", func() *healthv1.Model { return &healthv1.Model{} })

// activeSlot is the one active slot of a workspace's models.
const activeSlot = "model"

func checkWorkspace(ws string) error {
	if ws == "" {
		return errors.New("empty workspace")
	}
	return nil
}

// PutModel stores m as the next version of its id and sets m.Version.
func PutModel(tx *kv.Tx, ws string, m *healthv1.Model) error {
	if err := checkWorkspace(ws); err != nil {
		return err
	}
	last, err := models.Latest(tx, ws, m.GetId())
	if err != nil {
		return fmt.Errorf("put model %q: %w", m.GetId(), err)
	}
	m.Version = last + 1
	return models.Put(tx, ws, m.GetId(), m.GetVersion(), m)
}

// GetModel loads one version of a model.
func GetModel(tx *kv.Tx, ws, id string, version uint32) (*healthv1.Model, error) {
	if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	return models.Get(tx, ws, id, version)
}

// ListModels returns a model's versions, newest first, below version before
// (0 = from the newest), at most n.
func ListModels(tx *kv.Tx, ws, id string, before uint32, n int) ([]*healthv1.Model, error) {
	if err := checkWorkspace(ws); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	var out []*healthv1.Model
	err := models.List(tx, ws, id, before, func(_ uint32, m *healthv1.Model) (bool, error) {
		out = append(out, m)
		return len(out) < n, nil
	})
	return out, err
}

// SetActive makes a model version the workspace's scoring model.
func SetActive(tx *kv.Tx, ws, id string, version uint32) error {
	if err := checkWorkspace(ws); err != nil {
		return err
	}
	return models.SetActive(tx, ws, activeSlot, id, version)
}

// Active returns the workspace's active model id and version; ErrNotFound
// when none was ever activated (the built-in default applies).
func Active(tx *kv.Tx, ws string) (string, uint32, error) {
	if err := checkWorkspace(ws); err != nil {
		return "", 0, err
	}
	// Actives rather than Active: it reports a missing slot without
	// building an error, and every evaluation asks.
	ps, err := models.Actives(tx, ws)
	if err != nil {
		return "", 0, err
	}
	for _, p := range ps {
		if p.Slot == activeSlot {
			return p.ID, p.Version, nil
		}
	}
	return "", 0, ErrNotFound
}

// moveModelsToVersions is the migration to schema 3: it copies every model
// version from the old "models" buckets (models/<ws>: model id NUL
// U64(version) -> healthv1.Model) and every active model from the old
// "active" buckets (active/<ws>: "model" -> model id NUL U64(version)) into
// the shared versioned-definitions store, then drops the old buckets.
func moveModelsToVersions(b *bbolt.Tx) error {
	tx := kv.Wrap(b)
	for _, name := range []string{"models", "active"} {
		top := b.Bucket([]byte(name))
		if top == nil {
			continue
		}
		err := top.ForEach(func(wsKey, v []byte) error {
			wb := top.Bucket(wsKey)
			if v != nil || wb == nil {
				return fmt.Errorf("%s: %q is not a workspace bucket", name, wsKey)
			}
			ws := string(wsKey)
			return wb.ForEach(func(k, v []byte) error {
				if name == "active" {
					if string(k) != activeSlot {
						return nil
					}
					id, ver, ok := oldModelKey(v)
					if !ok {
						return fmt.Errorf("active model of %q: malformed %x", ws, v)
					}
					return models.SetActive(tx, ws, activeSlot, id, ver)
				}
				id, ver, ok := oldModelKey(k)
				if !ok {
					return fmt.Errorf("model of %q: malformed key %x", ws, k)
				}
				m := &healthv1.Model{}
				if err := proto.Unmarshal(v, m); err != nil {
					return fmt.Errorf("model %q v%d of %q: %w", id, ver, ws, err)
				}
				return models.Put(tx, ws, id, ver, m)
			})
		})
		if err != nil {
			return fmt.Errorf("move %s: %w", name, err)
		}
		if err := b.DeleteBucket([]byte(name)); err != nil {
			return fmt.Errorf("drop old %s: %w", name, err)
		}
	}
	return nil
}

// oldModelKey parses the schema-2 form "model id NUL U64(version)".
func oldModelKey(k []byte) (string, uint32, bool) {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return "", 0, false
	}
	ver := kv.ParseU64(k[len(k)-8:])
	if ver == 0 || ver > math.MaxUint32 {
		return "", 0, false
	}
	return string(k[:len(k)-9]), uint32(ver), true
}

// Timer is a due account re-check.
type Timer struct {
	// Workspace and Account name the account.
	Workspace, Account string
	// Due is when the check is due.
	Due time.Time
}

// ArmTimer (re)schedules the account's daily check, replacing any earlier one.
func ArmTimer(tx *kv.Tx, ws, acct string, due time.Time) error {
	return NewWriter(tx, ws).ArmTimer(acct, due)
}

// DisarmTimer removes the account's pending check, if any.
func DisarmTimer(tx *kv.Tx, ws, acct string) error { return NewWriter(tx, ws).DisarmTimer(acct) }

func timerKey(ws, acct string, due uint64) []byte {
	return append(kv.U64(due), key(ws, acct)...)
}

func deleteTimer(tx *kv.Tx, ws, acct string, due uint64) error {
	b, err := tx.Bucket("timers")
	if err != nil {
		return err
	}
	if err := b.Delete(timerKey(ws, acct, due)); err != nil {
		return fmt.Errorf("delete timer of %q: %w", acct, err)
	}
	return nil
}

// DueTimers lists up to n timers due at or before now, earliest first.
func DueTimers(tx *kv.Tx, now time.Time, n int) ([]Timer, error) {
	b, err := tx.Bucket("timers")
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
func NextTimer(tx *kv.Tx) (time.Time, bool, error) {
	b, err := tx.Bucket("timers")
	if err != nil || b == nil {
		return time.Time{}, false, err
	}
	k, _ := b.Cursor().First()
	if k == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(int64(kv.ParseU64(k)), 0).UTC(), true, nil
}
