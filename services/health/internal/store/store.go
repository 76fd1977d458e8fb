// Package store keeps the health service's typed buckets on top of the
// shared bbolt wrapper. Every bucket is nested under the workspace, so a scan
// can never cross tenants. Functions take the caller's transaction
// (*kv.Tx) so that state, cursors and log records commit together; this is
// the only package of the service that reaches bbolt beneath it. The
// hand-written encoders of the records it stores are here too (codec.go,
// wire.go).
//
// Layout (all under a per-workspace sub-bucket unless noted):
//
//	accounts/<ws>   account id                 -> account.Aggregates (pkg/domain/account Marshal)
//	meta/<ws>       account id                 -> Meta (EncodeMeta; small, rewritten on every evaluation)
//	health/<ws>     account id                 -> healthv1.AccountHealth
//	rows/<ws>       account id                 -> healthv1.AccountRow
//	signals/<ws>    account \x00 reason        -> commonv1.Signal (open and closed)
//	sigidx/<ws>     reason \x00 account        -> "" (open signals only)
//	snapshots/<ws>  account \x00 YYYY-MM-DD    -> Snapshot (EncodeSnapshot)
//	timers          U64(unix due) ws \x00 acct -> "" (global, ordered by due time)
//	timeridx/<ws>   account id                 -> U64(unix due)
//
// Models and the active model are kept by pkg/store's Versions (kind
// "model", active slot "model"; see models.go).
package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// SchemaVersion is the layout above. Version 3 keeps models in pkg/store's
// Versions; version 2 kept them in health's own "models" and "active"
// buckets. Version 2 stores pkg/domain/account's aggregates; version 1
// stored health's own encoding, which nothing decodes any more (see
// Migrations).
const SchemaVersion = 3

// derivedBuckets hold what the consumers derive from the upstream logs; a
// rebuild drops them. Models and the health log are kept.
var derivedBuckets = []string{"accounts", "meta", "health", "rows", "signals", "sigidx", "snapshots", "timers", "timeridx"}

// Migrations upgrade an older health file; pass them to kv.Open with
// SchemaVersion. Version 1 held aggregates in an encoding that pkg/domain/account
// cannot read (and whose version byte pkg/domain/account would mistake for its
// own), so moving to 2 drops every derived bucket and every consumer cursor
// (ingestion, its replicas "ingestion-<k>", stages): the service rebuilds
// accounts, scores, signals and snapshots by replaying the upstream logs, as
// a fresh replica does. Moving to 3 copies the models and active models
// into pkg/store's Versions (moveModelsToVersions).
var Migrations = map[uint32]func(*bbolt.Tx) error{2: rebuildFromLogs, 3: moveModelsToVersions}

func rebuildFromLogs(tx *bbolt.Tx) error {
	for _, name := range derivedBuckets {
		if tx.Bucket([]byte(name)) == nil {
			continue
		}
		if err := tx.DeleteBucket([]byte(name)); err != nil {
			return fmt.Errorf("drop %s for rebuild: %w", name, err)
		}
	}
	// Everything the consumers applied is gone, so every cursor goes too
	// (pkg/stream keeps them in "_cursors").
	if tx.Bucket([]byte("_cursors")) != nil {
		if err := tx.DeleteBucket([]byte("_cursors")); err != nil {
			return fmt.Errorf("reset consumer cursors for rebuild: %w", err)
		}
	}
	return nil
}

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = kv.ErrNotFound

// Account is the per-account working state of the consumers.
type Account struct {
	// Agg is the folded event history.
	Agg *account.Aggregates
	// Meta is the evaluation state; it is stored apart from Agg so that a
	// rescore, which does not change Agg, does not rewrite it.
	Meta
}

// Meta is an account's evaluation state.
type Meta struct {
	// Stage and EnteredAt come from the stages log.
	Stage     string
	EnteredAt time.Time
	// DropFrom is the band held before a band drop (signals.State).
	DropFrom healthv1.Band
	// LastEval is the as-of time of the latest evaluation; evaluations never go back in time.
	LastEval time.Time
}

// Snapshot is one day's score with enough detail to backtest other models.
type Snapshot struct {
	// Day is YYYY-MM-DD (UTC).
	Day string
	// Score and Band as computed.
	Score float64
	Band  healthv1.Band
	// Points per component name.
	Points map[string]float64
	// Raw holds each evaluated measure's value, keyed by model.MeasureKey
	// of its CEL source.
	Raw map[uint64]float64
	// When is the condition of the profile that applied ("" = base components).
	When string
}

func bucket(tx *kv.Tx, name, ws string) (*bbolt.Bucket, error) {
	if ws == "" {
		return nil, errors.New("empty workspace")
	}
	return tx.Bucket(name, ws)
}

func key(parts ...string) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, max(n, 0))
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// putProto marshals deterministically (sorted map keys), so identical state
// gives identical bytes, which the restart-equivalence test relies on.
func putProto(b *bbolt.Bucket, k []byte, m proto.Message) error {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal %T: %w", m, err)
	}
	return b.Put(k, raw)
}

// GetAccount loads an account's working state.
func GetAccount(tx *kv.Tx, ws, acct string) (*Account, error) {
	raw, meta, err := GetAccountRaw(tx, ws, acct)
	if err != nil {
		return nil, err
	}
	return DecodeAccount(raw, meta)
}

// GetAccountRaw returns copies of an account's encoded aggregate and meta,
// for callers that decode in parallel outside the transaction.
func GetAccountRaw(tx *kv.Tx, ws, acct string) (agg, meta []byte, err error) {
	b, err := bucket(tx, "accounts", ws)
	if err != nil {
		return nil, nil, err
	}
	if b != nil {
		agg = b.Get([]byte(acct))
	}
	if agg == nil {
		return nil, nil, fmt.Errorf("get account %q: %w", acct, ErrNotFound)
	}
	mb, err := bucket(tx, "meta", ws)
	if err != nil {
		return nil, nil, err
	}
	if mb != nil {
		meta = mb.Get([]byte(acct))
	}
	return append([]byte(nil), agg...), append([]byte(nil), meta...), nil
}

// DecodeAccount decodes what GetAccountRaw returned.
func DecodeAccount(agg, meta []byte) (*Account, error) {
	return DecodeAccountWith(nil, math.MinInt32, agg, meta)
}

// DecodeAccountWith is DecodeAccount decoding the aggregate with s (see
// account.Scratch) when s is not nil, keeping only its daily buckets from
// day fromDay (account.DayOf) on; the result is then only for reading.
func DecodeAccountWith(s *account.Scratch, fromDay int32, agg, meta []byte) (*Account, error) {
	a := &Account{}
	var err error
	if s != nil {
		a.Agg, err = s.UnmarshalFrom(agg, fromDay)
	} else {
		a.Agg, err = account.Unmarshal(agg)
	}
	if err != nil {
		return nil, fmt.Errorf("decode aggregate: %w", err)
	}
	m, err := DecodeMeta(meta)
	if err != nil {
		return nil, err
	}
	a.Meta = *m
	return a, nil
}

// PutAccount stores an account's meta, and its aggregate when withAgg.
func PutAccount(tx *kv.Tx, a *Account, withAgg bool) error {
	ws, id := a.Agg.Workspace, []byte(a.Agg.AccountID)
	if withAgg {
		b, err := bucket(tx, "accounts", ws)
		if err != nil {
			return err
		}
		if err := b.Put(id, a.Agg.Marshal()); err != nil {
			return fmt.Errorf("put aggregate of %q: %w", id, err)
		}
	}
	return NewWriter(tx, ws).PutMeta(a.Agg.AccountID, EncodeMeta(&a.Meta))
}

// AccountIDs lists a workspace's account ids in order.
func AccountIDs(tx *kv.Tx, ws string) ([]string, error) {
	b, err := bucket(tx, "accounts", ws)
	if err != nil || b == nil {
		return nil, err
	}
	var out []string
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		out = append(out, string(k))
	}
	return out, nil
}

// ForEachAccount visits every account of a workspace in id order.
func ForEachAccount(tx *kv.Tx, ws string, fn func(*Account) error) error {
	ids, err := AccountIDs(tx, ws)
	if err != nil {
		return err
	}
	for _, id := range ids {
		a, err := GetAccount(tx, ws, id)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// DeleteAccount forgets everything about an account.
func DeleteAccount(tx *kv.Tx, ws, acct string) error {
	for _, name := range []string{"accounts", "meta", "health", "rows", "timeridx"} {
		b, err := bucket(tx, name, ws)
		if err != nil {
			return err
		}
		if name == "timeridx" {
			if due := b.Get([]byte(acct)); due != nil {
				if err := deleteTimer(tx, ws, acct, kv.ParseU64(due)); err != nil {
					return err
				}
			}
		}
		if err := b.Delete([]byte(acct)); err != nil {
			return fmt.Errorf("delete %s of %q: %w", name, acct, err)
		}
	}
	for _, name := range []string{"signals", "snapshots"} {
		b, err := bucket(tx, name, ws)
		if err != nil {
			return err
		}
		if err := deletePrefix(b, key(acct, "")); err != nil {
			return fmt.Errorf("delete %s of %q: %w", name, acct, err)
		}
	}
	idx, err := bucket(tx, "sigidx", ws)
	if err != nil {
		return err
	}
	var dead [][]byte
	_ = idx.ForEach(func(k, _ []byte) error {
		if i := bytes.IndexByte(k, 0); i >= 0 && string(k[i+1:]) == acct {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range dead {
		if err := idx.Delete(k); err != nil {
			return fmt.Errorf("delete signal index of %q: %w", acct, err)
		}
	}
	return nil
}

func deletePrefix(b *bbolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// GetHealth loads an account's current health.
func GetHealth(tx *kv.Tx, ws, acct string) (*healthv1.AccountHealth, error) {
	b, err := bucket(tx, "health", ws)
	if err != nil {
		return nil, err
	}
	var v []byte
	if b != nil {
		v = b.Get([]byte(acct))
	}
	if v == nil {
		return nil, fmt.Errorf("get health of %q: %w", acct, ErrNotFound)
	}
	h, err := UnmarshalHealth(v)
	if err != nil {
		return nil, fmt.Errorf("get health of %q: unmarshal: %w", acct, err)
	}
	return h, nil
}

// GetHealthRaw returns a copy of an account's encoded health, nil when it
// was never scored.
func GetHealthRaw(tx *kv.Tx, ws, acct string) ([]byte, error) {
	b, err := bucket(tx, "health", ws)
	if err != nil || b == nil {
		return nil, err
	}
	v := b.Get([]byte(acct))
	if v == nil {
		return nil, nil
	}
	return append([]byte(nil), v...), nil
}

// PutHealth stores an account's health and its list row.
func PutHealth(tx *kv.Tx, h *healthv1.AccountHealth, row *healthv1.AccountRow) error {
	hb, err := Marshal(h)
	if err != nil {
		return fmt.Errorf("put health of %q: %w", h.GetAccountId(), err)
	}
	rb, err := Marshal(row)
	if err != nil {
		return fmt.Errorf("put row of %q: %w", h.GetAccountId(), err)
	}
	w := NewWriter(tx, h.GetWorkspace())
	if err := w.PutHealth(h.GetAccountId(), hb); err != nil {
		return err
	}
	return w.PutRow(h.GetAccountId(), rb)
}

// ForEachRow visits every account row of a workspace in id order.
func ForEachRow(tx *kv.Tx, ws string, fn func(*healthv1.AccountRow) error) error {
	b, err := bucket(tx, "rows", ws)
	if err != nil || b == nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error {
		r := &healthv1.AccountRow{}
		if err := kv.GetProto(b, k, r); err != nil {
			return err
		}
		return fn(r)
	})
}

// GetRow loads one account row.
func GetRow(tx *kv.Tx, ws, acct string) (*healthv1.AccountRow, error) {
	b, err := bucket(tx, "rows", ws)
	if err != nil {
		return nil, err
	}
	r := &healthv1.AccountRow{}
	if err := kv.GetProto(b, []byte(acct), r); err != nil {
		return nil, fmt.Errorf("get row of %q: %w", acct, err)
	}
	return r, nil
}

// PutSignal stores a signal and keeps the open-signal index.
func PutSignal(tx *kv.Tx, s *commonv1.Signal) error {
	data, err := Marshal(s)
	if err != nil {
		return err
	}
	return putSignal(tx, s, data)
}

func putSignal(tx *kv.Tx, s *commonv1.Signal, data []byte) error {
	return NewWriter(tx, s.GetWorkspace()).PutSignal(s, data)
}

// ScanSignals visits signals of a workspace (of one account when acct is not
// empty) in key order, starting after the key after; fn returns false to stop.
func ScanSignals(tx *kv.Tx, ws, acct string, after []byte, fn func(k []byte, s *commonv1.Signal) (bool, error)) error {
	b, err := bucket(tx, "signals", ws)
	if err != nil || b == nil {
		return err
	}
	var prefix []byte
	if acct != "" {
		prefix = key(acct, "")
	}
	c := b.Cursor()
	k, v := c.Seek(prefix)
	if len(after) > 0 {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		s := &commonv1.Signal{}
		if err := kv.GetProto(b, k, s); err != nil {
			return err
		}
		_ = v
		more, err := fn(k, s)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// AccountsWithSignal lists the accounts holding an open signal with reason.
func AccountsWithSignal(tx *kv.Tx, ws, reason string) (map[string]bool, error) {
	b, err := bucket(tx, "sigidx", ws)
	if err != nil || b == nil {
		return map[string]bool{}, err
	}
	out := map[string]bool{}
	prefix := key(reason, "")
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out[string(k[len(prefix):])] = true
	}
	return out, nil
}

// PutSnapshot stores (overwrites) the account's snapshot of s.Day.
func PutSnapshot(tx *kv.Tx, ws, acct string, s *Snapshot) error {
	return NewWriter(tx, ws).PutSnapshot(acct, s.Day, EncodeSnapshot(s))
}

// SnapshotAt returns the latest snapshot on or before day.
func SnapshotAt(tx *kv.Tx, ws, acct, day string) (*Snapshot, error) {
	b, err := bucket(tx, "snapshots", ws)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNotFound
	}
	prefix := key(acct, "")
	c := b.Cursor()
	k, v := c.Seek(key(acct, day))
	switch {
	case k == nil: // past the end: the last key is the candidate
		k, v = c.Last()
	case !bytes.Equal(k, key(acct, day)):
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, ErrNotFound
	}
	s, err := DecodeSnapshot(v)
	if err != nil {
		return nil, fmt.Errorf("decode snapshot %q: %w", k, err)
	}
	return s, nil
}

// SnapshotScoreAt returns the score of the latest snapshot on or before
// day, decoding nothing else (trends only need the score).
func SnapshotScoreAt(tx *kv.Tx, ws, acct, day string) (float64, error) {
	b, err := bucket(tx, "snapshots", ws)
	if err != nil {
		return 0, err
	}
	if b == nil {
		return 0, ErrNotFound
	}
	return snapshotScoreAt(b.Cursor(), acct, day)
}

func snapshotScoreAt(c *bbolt.Cursor, acct, day string) (float64, error) {
	var kb [64]byte
	k0 := append(append(append(kb[:0], acct...), 0), day...)
	prefixLen := len(acct) + 1
	k, v := c.Seek(k0)
	switch {
	case k == nil: // past the end: the last key is the candidate
		k, v = c.Last()
	case !bytes.Equal(k, k0):
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, k0[:prefixLen]) {
		return 0, ErrNotFound
	}
	score, err := DecodeSnapshotScore(v)
	if err != nil {
		return 0, fmt.Errorf("decode snapshot %q: %w", k, err)
	}
	return score, nil
}

// ScanSnapshots visits an account's snapshots newest first, starting before
// the day before (exclusive; "" = newest); fn returns false to stop.
func ScanSnapshots(tx *kv.Tx, ws, acct, before string, fn func(*Snapshot) (bool, error)) error {
	b, err := bucket(tx, "snapshots", ws)
	if err != nil || b == nil {
		return err
	}
	prefix := key(acct, "")
	c := b.Cursor()
	var k, v []byte
	if before == "" {
		k, v = c.Seek(key(acct, "\xff"))
	} else {
		k, v = c.Seek(key(acct, before))
	}
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		s, err := DecodeSnapshot(v)
		if err != nil {
			return fmt.Errorf("decode snapshot %q: %w", k, err)
		}
		more, err := fn(s)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
