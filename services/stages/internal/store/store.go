// Package store keeps the stages service's typed bbolt buckets: journey
// definitions (versioned, with an active pointer), per-account journey state
// and aggregates, signals, durable timers keyed by due time, stage visits for
// funnels, and replays.
//
// Account data lives under a namespace: the live one, or one per replay, so
// that a replay never touches live state until it is activated.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = store.ErrNotFound

// SchemaVersion is the layout version of the stages file. Version 2 keeps
// journey definitions and active versions in pkg/store.Versions (kind
// "journey"); migrateDefinitions moves a version 1 file onto it.
const SchemaVersion = 2

// Top-level bucket names. Journey definitions and their active versions
// live in pkg/store.Versions (see definitions.go).
const (
	bucketReplays = "replays"  // key(ws, replay id) -> Replay
	bucketTimers  = "timers"   // U64(due nanos) + key(ns, ws, journey, account) -> U32(partition)
	bucketTimerOf = "timer_of" // key(ns, ws, journey, account) -> U64(due nanos)
)

// Per-namespace bucket names.
const (
	bucketAccounts = "accounts" // key(ws, journey, account) -> AccountJourney
	bucketAggs     = "aggs"     // key(ws, journey, account) -> account.Aggregates encoding
	bucketSignals  = "signals"  // key(ws, account, signal id) -> Signal
	bucketVisits   = "visits"   // key(ws, journey, account) + U64(entered nanos) + stage -> Visit
)

// Key joins parts with a length prefix each, so that any bytes may appear in
// ids and a key of fewer parts is a prefix of longer ones.
func Key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 2
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// SplitKey reverses Key.
func SplitKey(k []byte) ([]string, error) {
	var out []string
	for len(k) > 0 {
		n, w := binary.Uvarint(k)
		if w <= 0 || uint64(len(k)-w) < n {
			return nil, fmt.Errorf("split key: %w", errCorruptKey)
		}
		out = append(out, string(k[w:w+int(n)]))
		k = k[w+int(n):]
	}
	return out, nil
}

var errCorruptKey = errors.New("corrupt key")

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// Namespace selects live state or a replay's shadow state.
type Namespace string

// Live is the namespace of the active versions.
const Live Namespace = "live"

// ReplayNamespace is the shadow namespace of a replay.
func ReplayNamespace(replayID string) Namespace { return Namespace("replay:" + replayID) }

func (ns Namespace) bucket(tx *store.Tx, name string) (*bbolt.Bucket, error) {
	return tx.Bucket(string(ns), name)
}

// Open opens the stages bbolt file, migrating an older layout.
func Open(path string, noSync bool) (*store.DB, error) {
	db, err := store.Open(path, store.Options{NoSync: noSync, SchemaVersion: SchemaVersion, Migrations: Migrations()})
	if err != nil {
		return nil, fmt.Errorf("open stages store: %w", err)
	}
	return db, nil
}

// --- accounts ---

// Account is one account's state in one journey.
type Account struct {
	// Journey is the stored state (stage, history, open signals, traits).
	Journey *stagesv1.AccountJourney
	// Aggs are the account's aggregates under the journey's config.
	Aggs *account.Aggregates
}

// GetAccount loads an account's state; ErrNotFound when it has none.
func (ns Namespace) GetAccount(tx *store.Tx, ws, journey, acct string) (*Account, error) {
	ab, err := ns.bucket(tx, bucketAccounts)
	if err != nil || ab == nil {
		return nil, fmt.Errorf("get account %q: %w", acct, ErrNotFound)
	}
	k := Key(ws, journey, acct)
	aj := &stagesv1.AccountJourney{}
	if err := store.GetProto(ab, k, aj); err != nil {
		return nil, fmt.Errorf("get account %q: %w", acct, err)
	}
	gb, err := ns.bucket(tx, bucketAggs)
	if err != nil || gb == nil {
		return nil, fmt.Errorf("get aggregates of %q: %w", acct, ErrNotFound)
	}
	raw := gb.Get(k)
	if raw == nil {
		return &Account{Journey: aj, Aggs: account.New(ws, acct)}, nil
	}
	agg, err := account.Unmarshal(raw)
	if err != nil {
		return nil, fmt.Errorf("get aggregates of %q: %w", acct, err)
	}
	return &Account{Journey: aj, Aggs: agg}, nil
}

// Aggregates decodes an account's aggregates into s, stepping over the
// daily buckets before day from (account.Scratch.UnmarshalFrom): for a list
// that reads a few facts of every account. The result is valid until s's
// next decode; an account without aggregates has empty ones.
func (ns Namespace) Aggregates(tx *store.Tx, ws, journey, acct string, s *account.Scratch, from int32) (*account.Aggregates, error) {
	gb, err := ns.bucket(tx, bucketAggs)
	if err != nil || gb == nil {
		return nil, fmt.Errorf("get aggregates of %q: %w", acct, ErrNotFound)
	}
	raw := gb.Get(Key(ws, journey, acct))
	if raw == nil {
		return account.New(ws, acct), nil
	}
	agg, err := s.UnmarshalFrom(raw, from)
	if err != nil {
		return nil, fmt.Errorf("get aggregates of %q: %w", acct, err)
	}
	return agg, nil
}

// PutAccount stores an account's state.
func (ns Namespace) PutAccount(tx *store.Tx, a *Account) error {
	aj := a.Journey
	k := Key(aj.GetWorkspace(), aj.GetJourneyId(), aj.GetAccountId())
	ab, err := ns.bucket(tx, bucketAccounts)
	if err != nil {
		return fmt.Errorf("put account %q: %w", aj.GetAccountId(), err)
	}
	if err := store.PutProto(ab, k, aj); err != nil {
		return fmt.Errorf("put account %q: %w", aj.GetAccountId(), err)
	}
	gb, err := ns.bucket(tx, bucketAggs)
	if err != nil {
		return fmt.Errorf("put aggregates of %q: %w", aj.GetAccountId(), err)
	}
	if err := gb.Put(k, a.Aggs.Marshal()); err != nil {
		return fmt.Errorf("put aggregates of %q: %w", aj.GetAccountId(), err)
	}
	return nil
}

// DeleteAccount removes an account's state in a journey, its visits and its timer.
func (ns Namespace) DeleteAccount(tx *store.Tx, ws, journey, acct string) error {
	k := Key(ws, journey, acct)
	for _, name := range []string{bucketAccounts, bucketAggs} {
		b, err := ns.bucket(tx, name)
		if err != nil {
			return fmt.Errorf("delete account %q: %w", acct, err)
		}
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete account %q: %w", acct, err)
		}
	}
	if err := ns.deletePrefix(tx, bucketVisits, k); err != nil {
		return fmt.Errorf("delete visits of %q: %w", acct, err)
	}
	return ns.ClearTimer(tx, ws, journey, acct)
}

// DeleteSignals removes every signal of an account.
func (ns Namespace) DeleteSignals(tx *store.Tx, ws, acct string) error {
	return ns.deletePrefix(tx, bucketSignals, Key(ws, acct))
}

func (ns Namespace) deletePrefix(tx *store.Tx, bucket string, prefix []byte) error {
	b, err := ns.bucket(tx, bucket)
	if err != nil {
		return err
	}
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Accounts calls fn for each account of a journey in key order, starting
// after the key after (nil = from the start). fn returns false to stop.
func (ns Namespace) Accounts(tx *store.Tx, ws, journey string, after []byte, fn func(key []byte, aj *stagesv1.AccountJourney) (bool, error)) error {
	b, err := ns.bucket(tx, bucketAccounts)
	if err != nil || b == nil {
		return err
	}
	prefix := Key(ws, journey)
	c := b.Cursor()
	k, v := c.Seek(prefix)
	if after != nil {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		aj := &stagesv1.AccountJourney{}
		if err := store.Unmarshal(v, aj); err != nil {
			return fmt.Errorf("decode account: %w", err)
		}
		more, err := fn(k, aj)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// AccountsInNoStage calls fn for each account of a journey that is in no
// stage (churned, or not placed yet), in key order. It reads only the top
// level of each stored record to skip the accounts in a stage, which at
// 100,000 accounts are nearly all of them: decoding every record was half
// of a funnel's time.
func (ns Namespace) AccountsInNoStage(tx *store.Tx, ws, journey string, fn func(aj *stagesv1.AccountJourney) error) error {
	b, err := ns.bucket(tx, bucketAccounts)
	if err != nil || b == nil {
		return err
	}
	prefix := Key(ws, journey)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		staged, err := HasStage(v)
		if err != nil {
			return fmt.Errorf("decode account: %w", err)
		}
		if staged {
			continue
		}
		aj := &stagesv1.AccountJourney{}
		if err := store.Unmarshal(v, aj); err != nil {
			return fmt.Errorf("decode account: %w", err)
		}
		if err := fn(aj); err != nil {
			return err
		}
	}
	return nil
}

// accountStageField is AccountJourney.stage's field number.
const accountStageField = 5

// HasStage reports whether an encoded AccountJourney has a stage, without
// decoding it: it walks the top-level fields only. As protobuf decoding
// does, the last stage field wins.
func HasStage(raw []byte) (bool, error) {
	staged := false
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		raw = raw[n:]
		if num == accountStageField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(raw)
			if m < 0 {
				return false, protowire.ParseError(m)
			}
			staged, raw = len(v) > 0, raw[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			return false, protowire.ParseError(m)
		}
		raw = raw[m:]
	}
	return staged, nil
}

// AggKeys lists the (journey, account) pairs of a workspace with aggregates.
func (ns Namespace) AggKeys(tx *store.Tx, ws string) ([][2]string, error) {
	b, err := ns.bucket(tx, bucketAggs)
	if err != nil || b == nil {
		return nil, err
	}
	prefix := Key(ws)
	var out [][2]string
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		parts, err := SplitKey(k)
		if err != nil || len(parts) != 3 {
			continue
		}
		out = append(out, [2]string{parts[1], parts[2]})
	}
	return out, nil
}

// CopyJourney replaces dst's accounts, aggregates and visits of a journey
// with ns's, for activating a replayed version.
func (ns Namespace) CopyJourney(tx *store.Tx, dst Namespace, ws, journey string) (int, error) {
	prefix := Key(ws, journey)
	n := 0
	for _, name := range []string{bucketAccounts, bucketAggs, bucketVisits} {
		if err := dst.deletePrefix(tx, name, prefix); err != nil {
			return 0, fmt.Errorf("clear %s: %w", name, err)
		}
		src, err := ns.bucket(tx, name)
		if err != nil {
			return 0, fmt.Errorf("copy %s: %w", name, err)
		}
		to, err := dst.bucket(tx, name)
		if err != nil {
			return 0, fmt.Errorf("copy %s: %w", name, err)
		}
		c := src.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := to.Put(append([]byte{}, k...), append([]byte{}, v...)); err != nil {
				return 0, fmt.Errorf("copy %s: %w", name, err)
			}
			if name == bucketAccounts {
				n++
			}
		}
	}
	return n, nil
}

// Drop deletes the whole namespace (a finished or abandoned replay).
func (ns Namespace) Drop(tx *store.Tx) error {
	b := tx.Bolt()
	if b.Bucket([]byte(ns)) == nil {
		return nil
	}
	return b.DeleteBucket([]byte(ns))
}

// --- signals ---

// PutSignal stores a signal.
func (ns Namespace) PutSignal(tx *store.Tx, s *commonv1.Signal) error {
	b, err := ns.bucket(tx, bucketSignals)
	if err != nil {
		return fmt.Errorf("put signal: %w", err)
	}
	return store.PutProto(b, Key(s.GetWorkspace(), s.GetAccountId(), s.GetSignalId()), s)
}

// Signals calls fn for each signal of a workspace (one account when acct is
// set) in key order, after the key after.
func (ns Namespace) Signals(tx *store.Tx, ws, acct string, after []byte, fn func(key []byte, s *commonv1.Signal) (bool, error)) error {
	b, err := ns.bucket(tx, bucketSignals)
	if err != nil || b == nil {
		return err
	}
	prefix := Key(ws)
	if acct != "" {
		prefix = Key(ws, acct)
	}
	c := b.Cursor()
	k, v := c.Seek(prefix)
	if after != nil {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		s := &commonv1.Signal{}
		if err := proto.Unmarshal(v, s); err != nil {
			return fmt.Errorf("decode signal: %w", err)
		}
		more, err := fn(k, s)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// --- timers ---

// Timer is a due evaluation of one account.
type Timer struct {
	// Due is when it fires.
	Due time.Time
	// NS is the namespace of the account.
	NS Namespace
	// Workspace, Journey and Account identify the account state.
	Workspace, Journey, Account string
	// Partition is the log partition outputs go to.
	Partition uint32
	key       []byte
}

// SetTimer arms the account's single timer at due, replacing any earlier one.
// It is a no-op when the timer is already armed at due.
func (ns Namespace) SetTimer(tx *store.Tx, ws, journey, acct string, due time.Time, partition uint32) error {
	id := Key(string(ns), ws, journey, acct)
	of, err := tx.Bucket(bucketTimerOf)
	if err != nil {
		return fmt.Errorf("set timer: %w", err)
	}
	tb, err := tx.Bucket(bucketTimers)
	if err != nil {
		return fmt.Errorf("set timer: %w", err)
	}
	nanos := store.U64(uint64(due.UnixNano()))
	if old := of.Get(id); old != nil {
		if bytes.Equal(old, nanos) {
			return nil
		}
		if err := tb.Delete(append(append([]byte{}, old...), id...)); err != nil {
			return fmt.Errorf("set timer: %w", err)
		}
	}
	if err := tb.Put(append(nanos, id...), u32(partition)); err != nil {
		return fmt.Errorf("set timer: %w", err)
	}
	return of.Put(id, nanos)
}

// ClearTimer removes the account's timer.
func (ns Namespace) ClearTimer(tx *store.Tx, ws, journey, acct string) error {
	id := Key(string(ns), ws, journey, acct)
	of, err := tx.Bucket(bucketTimerOf)
	if err != nil {
		return fmt.Errorf("clear timer: %w", err)
	}
	old := of.Get(id)
	if old == nil {
		return nil
	}
	tb, err := tx.Bucket(bucketTimers)
	if err != nil {
		return fmt.Errorf("clear timer: %w", err)
	}
	if err := tb.Delete(append(append([]byte{}, old...), id...)); err != nil {
		return fmt.Errorf("clear timer: %w", err)
	}
	return of.Delete(id)
}

// DueTimers returns up to max timers due at or before now, earliest first.
func DueTimers(tx *store.Tx, now time.Time, max int) ([]Timer, error) {
	tb, err := tx.Bucket(bucketTimers)
	if err != nil || tb == nil {
		return nil, err
	}
	limit := uint64(now.UnixNano())
	var out []Timer
	c := tb.Cursor()
	for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
		if len(k) < 8 || store.ParseU64(k[:8]) > limit {
			break
		}
		parts, err := SplitKey(k[8:])
		if err != nil || len(parts) != 4 || len(v) != 4 {
			continue
		}
		out = append(out, Timer{
			Due: time.Unix(0, int64(store.ParseU64(k[:8]))).UTC(), NS: Namespace(parts[0]),
			Workspace: parts[1], Journey: parts[2], Account: parts[3],
			Partition: binary.BigEndian.Uint32(v), key: append([]byte{}, k...),
		})
	}
	return out, nil
}

// NextDue returns the earliest timer's due time, false when none is armed.
func NextDue(tx *store.Tx) (time.Time, bool) {
	tb := tx.Bolt().Bucket([]byte(bucketTimers))
	if tb == nil {
		return time.Time{}, false
	}
	k, _ := tb.Cursor().First()
	if len(k) < 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(store.ParseU64(k[:8]))).UTC(), true
}

// Fired removes a timer returned by DueTimers (unless it was re-armed).
func Fired(tx *store.Tx, t Timer) error {
	tb, err := tx.Bucket(bucketTimers)
	if err != nil {
		return fmt.Errorf("remove fired timer: %w", err)
	}
	if err := tb.Delete(t.key); err != nil {
		return fmt.Errorf("remove fired timer: %w", err)
	}
	of, err := tx.Bucket(bucketTimerOf)
	if err != nil {
		return fmt.Errorf("remove fired timer: %w", err)
	}
	id := t.key[8:]
	if bytes.Equal(of.Get(id), t.key[:8]) {
		return of.Delete(id)
	}
	return nil
}

// --- replays ---

// PutReplay stores a replay's progress.
func PutReplay(tx *store.Tx, ws string, r *stagesv1.Replay) error {
	b, err := tx.Bucket(bucketReplays)
	if err != nil {
		return fmt.Errorf("put replay: %w", err)
	}
	return store.PutProto(b, Key(ws, r.GetReplayId()), r)
}

// GetReplay loads a replay.
func GetReplay(tx *store.Tx, ws, id string) (*stagesv1.Replay, error) {
	b, err := tx.Bucket(bucketReplays)
	if err != nil || b == nil {
		return nil, fmt.Errorf("get replay %q: %w", id, ErrNotFound)
	}
	r := &stagesv1.Replay{}
	if err := store.GetProto(b, Key(ws, id), r); err != nil {
		return nil, fmt.Errorf("get replay %q: %w", id, err)
	}
	return r, nil
}

// Replays calls fn for every replay of every workspace.
func Replays(tx *store.Tx, fn func(ws string, r *stagesv1.Replay) error) error {
	b := tx.Bolt().Bucket([]byte(bucketReplays))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		parts, err := SplitKey(k)
		if err != nil || len(parts) != 2 {
			return nil
		}
		r := &stagesv1.Replay{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("decode replay: %w", err)
		}
		return fn(parts[0], r)
	})
}

// bucketPositions holds, in a replay namespace, the ingestion offset applied
// per partition, so that a finished replay can be activated after a restart.
const bucketPositions = "positions"

// SetPosition records the ingestion offset applied in partition p.
func (ns Namespace) SetPosition(tx *store.Tx, p uint32, offset uint64) error {
	b, err := ns.bucket(tx, bucketPositions)
	if err != nil {
		return fmt.Errorf("set replay position: %w", err)
	}
	return b.Put(u32(p), store.U64(offset))
}

// Positions returns the offsets applied in partitions 0..n-1 (0 when none).
func (ns Namespace) Positions(tx *store.Tx, n uint32) ([]uint64, error) {
	out := make([]uint64, n)
	b, err := ns.bucket(tx, bucketPositions)
	if err != nil || b == nil {
		return out, err
	}
	for p := range out {
		out[p] = store.ParseU64(b.Get(u32(uint32(p))))
	}
	return out, nil
}

// Exists reports whether the namespace holds any state.
func (ns Namespace) Exists(tx *store.Tx) bool { return tx.Bolt().Bucket([]byte(ns)) != nil }

// RawAccount returns the stored encodings of an account's state, valid only
// during tx; nil when absent. The application compares them with what it wrote
// to reuse decoded state.
func (ns Namespace) RawAccount(tx *store.Tx, ws, journey, acct string) (aj, aggs []byte) {
	k := Key(ws, journey, acct)
	if b := tx.Bolt().Bucket([]byte(ns)); b != nil {
		if ab := b.Bucket([]byte(bucketAccounts)); ab != nil {
			aj = ab.Get(k)
		}
		if gb := b.Bucket([]byte(bucketAggs)); gb != nil {
			aggs = gb.Get(k)
		}
	}
	return aj, aggs
}

// PutAccountRaw is PutAccount that also returns the encodings written.
func (ns Namespace) PutAccountRaw(tx *store.Tx, a *Account) (aj, aggs []byte, err error) {
	j := a.Journey
	k := Key(j.GetWorkspace(), j.GetJourneyId(), j.GetAccountId())
	if aj, err = proto.Marshal(j); err != nil {
		return nil, nil, fmt.Errorf("encode account %q: %w", j.GetAccountId(), err)
	}
	aggs = a.Aggs.Marshal()
	ab, err := ns.bucket(tx, bucketAccounts)
	if err != nil {
		return nil, nil, fmt.Errorf("put account %q: %w", j.GetAccountId(), err)
	}
	if err := ab.Put(k, aj); err != nil {
		return nil, nil, fmt.Errorf("put account %q: %w", j.GetAccountId(), err)
	}
	gb, err := ns.bucket(tx, bucketAggs)
	if err != nil {
		return nil, nil, fmt.Errorf("put aggregates of %q: %w", j.GetAccountId(), err)
	}
	if err := gb.Put(k, aggs); err != nil {
		return nil, nil, fmt.Errorf("put aggregates of %q: %w", j.GetAccountId(), err)
	}
	return aj, aggs, nil
}
