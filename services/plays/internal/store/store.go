// Package store is the plays service's bbolt layout: what it knows of each
// account (from the stages, health and routing logs), cooldowns, the plays
// that fired, tasks and their timers, and the delivery outbox.
//
//	_versions/plays, _active/plays  applied plays files (pkg/store.Versions)
//	ws/<workspace>/accounts         account id → Account (JSON)
//	ws/<workspace>/assignments      assignment id → Assignment (JSON)
//	ws/<workspace>/cooldowns        play id 0 account id → until (unix ns)
//	ws/<workspace>/fired            play id 0 upstream record → nil (what fired)
//	ws/<workspace> 0 replay 0 <id>/  a replay's scratch accounts, assignments, cooldowns
//	ws/<workspace>/firings          firing seq (8 bytes) → playsv1.Firing
//	ws/<workspace>/tasks            task id → playsv1.Task
//	ws/<workspace>/tasks_by_due     due (8 bytes) task id → nil
//	ws/<workspace>/tasks_by_account account id 0 task id → nil
//	ws/<workspace>/deliveries       delivery id → playsv1.Delivery
//	ws/<workspace>/delivery_log     seq (8 bytes) → delivery id, oldest first
//	ws/<workspace>/replays          replay id → playsv1.Replay
//	timers                          due (8 bytes) workspace 0 task id → kind
//	pending                         workspace 0 delivery id → nil
//
// The outbox is the pending index: a delivery is written with the firing
// that made it, in the consumer's transaction, so each trigger is decided
// exactly once; the delivery engine works from it and records every
// outcome back here.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

// SchemaVersion is the plays file's schema version.
const SchemaVersion = 1

// OpenDB opens (creating) the plays file at path.
func OpenDB(path string, opts store.Options) (*store.DB, error) {
	opts.SchemaVersion = SchemaVersion
	return store.Open(path, opts)
}

// Versions holds the applied plays files: the raw YAML (secrets included;
// redacted on the way out) with the summary of each version.
var Versions = store.NewVersions("plays", func() *playsv1.GetPlaysResponse { return &playsv1.GetPlaysResponse{} })

// Slot is the one active-version slot of a workspace's plays.
const Slot = "plays"

// Account is what plays knows of an account from the derived logs.
type Account struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Segment string `json:"segment,omitempty"`
	// Status is "active" or "churned" ("" until a churn or win-back).
	Status string `json:"status,omitempty"`
	// Journey and Stage are the latest stage change's of the workspace's
	// default journey (pkg/domain/journey); Stages maps every journey the
	// account is in a stage of to that stage.
	Journey string            `json:"journey,omitempty"`
	Stage   string            `json:"stage,omitempty"`
	Stages  map[string]string `json:"stages,omitempty"`
	Band    string            `json:"band,omitempty"`
	Score   float64           `json:"score,omitempty"`
	// Owners maps a role (csm, ae, sdr) to its owner id.
	Owners map[string]string `json:"owners,omitempty"`
	// Signals are the open signals' reasons, OpenIDs their ids.
	Signals []string `json:"signals,omitempty"`
	OpenIDs []string `json:"open_ids,omitempty"`
}

// Map is the account as the plays' CEL sees it (play package doc).
func (a *Account) Map() map[string]any {
	status := a.Status
	if status == "" {
		status = "active"
	}
	sig := make([]string, len(a.Signals))
	copy(sig, a.Signals)
	stages := make(map[string]any, len(a.Stages))
	for j, st := range a.Stages {
		stages[j] = st
	}
	return map[string]any{
		"id": a.ID, "name": a.Name, "segment": a.Segment, "status": status,
		"journey": a.Journey, "stage": a.Stage, "stages": stages, "band": a.Band, "score": a.Score,
		"csm": a.Owners["csm"], "ae": a.Owners["ae"], "sdr": a.Owners["sdr"],
		"open_signals": sig,
	}
}

// Assignment is what plays remembers of a routing assignment, to tell a
// new one from a reassignment and to name the account of an SLA event.
type Assignment struct {
	Account string `json:"account"`
	Type    string `json:"type"`
	Owner   string `json:"owner"`
	State   string `json:"state"`
}

// Timer kinds.
const (
	// TimerOpen opens a scheduled playbook step.
	TimerOpen = "open"
	// TimerExpire expires an open task left past its due date.
	TimerExpire = "expire"
)

// Tx is a transaction scoped to one workspace.
type Tx struct {
	base *store.Tx
	tx   *bbolt.Tx
	ws   string
	// facts is where accounts, assignments and cooldowns are kept: the
	// workspace itself, or a replay's scratch space (InReplay).
	facts string
}

// In scopes tx to workspace.
func In(tx *store.Tx, workspace string) *Tx {
	return &Tx{base: tx, tx: tx.Bolt(), ws: workspace, facts: workspace}
}

// InReplay scopes tx to workspace for a replay: firings, tasks and
// deliveries are the workspace's, but what the replay learns of accounts
// as it reads the history (and its cooldowns) is kept apart, in a scratch
// space that DropReplay removes, so the live account state is untouched.
func InReplay(tx *store.Tx, workspace, replay string) *Tx {
	return &Tx{base: tx, tx: tx.Bolt(), ws: workspace, facts: replayFacts(workspace, replay)}
}

// replayFacts names a replay's scratch space; NUL never occurs in a
// workspace id (apierr.CheckID), so it cannot collide with one.
func replayFacts(workspace, replay string) string { return workspace + "\x00replay\x00" + replay }

// DropReplay removes a replay's scratch space.
func DropReplay(tx *store.Tx, workspace, replay string) error {
	root := tx.Bolt().Bucket([]byte("ws"))
	if root == nil {
		return nil
	}
	if err := root.DeleteBucket([]byte(replayFacts(workspace, replay))); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
		return err
	}
	return nil
}

// Replaying reports whether the Tx is a replay's.
func (t *Tx) Replaying() bool { return t.facts != t.ws }

// Base is the unscoped transaction.
func (t *Tx) Base() *store.Tx { return t.base }

// Workspace is the scope.
func (t *Tx) Workspace() string { return t.ws }

func (t *Tx) bucket(name string) (*bbolt.Bucket, error) { return t.bucketIn(t.ws, name) }

// factsBucket is a bucket of what is known of accounts (accounts,
// assignments, cooldowns): the workspace's, or a replay's scratch space.
func (t *Tx) factsBucket(name string) (*bbolt.Bucket, error) { return t.bucketIn(t.facts, name) }

func (t *Tx) bucketIn(ws, name string) (*bbolt.Bucket, error) {
	if t.tx.Writable() {
		return store.Bucket(t.tx, "ws", ws, name)
	}
	root := t.tx.Bucket([]byte("ws"))
	if root == nil {
		return nil, nil
	}
	w := root.Bucket([]byte(ws))
	if w == nil {
		return nil, nil
	}
	return w.Bucket([]byte(name)), nil
}

func (t *Tx) top(name string) (*bbolt.Bucket, error) {
	if t.tx.Writable() {
		return store.Bucket(t.tx, name)
	}
	return t.tx.Bucket([]byte(name)), nil
}

func getJSON(b *bbolt.Bucket, key string, v any) (bool, error) {
	if b == nil {
		return false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// Account returns the account (a fresh one when unknown).
func (t *Tx) Account(id string) (*Account, error) {
	b, err := t.factsBucket("accounts")
	if err != nil {
		return nil, err
	}
	a := &Account{ID: id}
	if _, err := getJSON(b, id, a); err != nil {
		return nil, err
	}
	return a, nil
}

// PutAccount stores a.
func (t *Tx) PutAccount(a *Account) error {
	b, err := t.factsBucket("accounts")
	if err != nil {
		return err
	}
	return putJSON(b, a.ID, a)
}

// Assignment returns a remembered assignment.
func (t *Tx) Assignment(id string) (*Assignment, bool, error) {
	b, err := t.factsBucket("assignments")
	if err != nil {
		return nil, false, err
	}
	a := &Assignment{}
	ok, err := getJSON(b, id, a)
	return a, ok, err
}

// PutAssignment remembers a.
func (t *Tx) PutAssignment(id string, a *Assignment) error {
	b, err := t.factsBucket("assignments")
	if err != nil {
		return err
	}
	return putJSON(b, id, a)
}

func cooldownKey(play, account string) []byte {
	return append(append([]byte(play), 0), account...)
}

// Cooldown returns until when play is held for account (zero: not held).
func (t *Tx) Cooldown(play, account string) (time.Time, error) {
	b, err := t.factsBucket("cooldowns")
	if err != nil || b == nil {
		return time.Time{}, err
	}
	v := b.Get(cooldownKey(play, account))
	if len(v) != 8 {
		return time.Time{}, nil
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), nil
}

// SetCooldown holds play for account until until.
func (t *Tx) SetCooldown(play, account string, until time.Time) error {
	b, err := t.factsBucket("cooldowns")
	if err != nil {
		return err
	}
	return b.Put(cooldownKey(play, account), store.U64(uint64(until.UnixNano())))
}

// NextSeq returns the workspace's next sequence number (firing, task and
// delivery ids come from it, so they are decided in the transaction).
func (t *Tx) NextSeq() (uint64, error) {
	b, err := t.bucket("firings")
	if err != nil {
		return 0, err
	}
	return b.NextSequence()
}

// PutFiring stores f under seq.
func (t *Tx) PutFiring(seq uint64, f *playsv1.Firing) error {
	b, err := t.bucket("firings")
	if err != nil {
		return err
	}
	return store.PutProto(b, store.U64(seq), f)
}

// Firings visits firings newest first, starting before the key before
// (nil: the newest), until fn returns false.
func (t *Tx) Firings(before []byte, fn func(key []byte, f *playsv1.Firing) (bool, error)) error {
	b, err := t.bucket("firings")
	if err != nil || b == nil {
		return err
	}
	return newestFirst(b, before, func(k, v []byte) (bool, error) {
		f := &playsv1.Firing{}
		if err := proto.Unmarshal(v, f); err != nil {
			return false, fmt.Errorf("decode firing %x: %w", k, err)
		}
		return fn(k, f)
	})
}

// newestFirst visits b's keys in descending order, starting before the
// key before (nil: the last), until fn returns false.
func newestFirst(b *bbolt.Bucket, before []byte, fn func(k, v []byte) (bool, error)) error {
	c := b.Cursor()
	var k, v []byte
	if before == nil {
		k, v = c.Last()
	} else {
		c.Seek(before)
		k, v = c.Prev()
	}
	for ; k != nil; k, v = c.Prev() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Task returns a task, or nil.
func (t *Tx) Task(id string) (*playsv1.Task, error) {
	b, err := t.bucket("tasks")
	if err != nil || b == nil {
		return nil, err
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	k := &playsv1.Task{}
	if err := proto.Unmarshal(v, k); err != nil {
		return nil, fmt.Errorf("decode task %s: %w", id, err)
	}
	return k, nil
}

// PutTask stores k and indexes it by due time and by account (neither
// changes once a task exists).
func (t *Tx) PutTask(k *playsv1.Task) error {
	b, err := t.bucket("tasks")
	if err != nil {
		return err
	}
	if err := store.PutProto(b, []byte(k.GetTaskId()), k); err != nil {
		return err
	}
	due, err := t.bucket("tasks_by_due")
	if err != nil {
		return err
	}
	if err := due.Put(dueKey(k), nil); err != nil {
		return err
	}
	acc, err := t.bucket("tasks_by_account")
	if err != nil {
		return err
	}
	return acc.Put(accountKey(k.GetAccountId(), k.GetTaskId()), nil)
}

// dueKey orders tasks by due time, those without one last.
func dueKey(k *playsv1.Task) []byte {
	at := uint64(1<<64 - 1)
	if k.GetDueAt() != nil {
		at = uint64(k.GetDueAt().AsTime().UnixNano())
	}
	return append(store.U64(at), k.GetTaskId()...)
}

func accountKey(account, id string) []byte {
	return append(append([]byte(account), 0), id...)
}

// DeleteTask removes a task and its index rows.
func (t *Tx) DeleteTask(id string) error {
	k, err := t.Task(id)
	if err != nil || k == nil {
		return err
	}
	for name, key := range map[string][]byte{"tasks": []byte(id), "tasks_by_due": dueKey(k), "tasks_by_account": accountKey(k.GetAccountId(), id)} {
		b, err := t.bucket(name)
		if err != nil {
			return err
		}
		if err := b.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// Tasks visits tasks soonest due first (those without a due date last),
// starting after the index key after, until fn returns false. fn gets each
// task's index key, the page token of a list that stops after it.
func (t *Tx) Tasks(after []byte, fn func(key []byte, k *playsv1.Task) (bool, error)) error {
	b, err := t.bucket("tasks_by_due")
	if err != nil || b == nil {
		return err
	}
	c := b.Cursor()
	var k []byte
	if after == nil {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(after)
		if bytes.Equal(k, after) {
			k, _ = c.Next()
		}
	}
	for ; k != nil; k, _ = c.Next() {
		if len(k) < 8 {
			continue
		}
		task, err := t.Task(string(k[8:]))
		if err != nil {
			return err
		}
		if task == nil {
			continue
		}
		more, err := fn(k, task)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// AccountTasks returns every task of an account.
func (t *Tx) AccountTasks(account string) ([]*playsv1.Task, error) {
	b, err := t.bucket("tasks_by_account")
	if err != nil || b == nil {
		return nil, err
	}
	prefix := append([]byte(account), 0)
	var out []*playsv1.Task
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		task, err := t.Task(string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		if task != nil {
			out = append(out, task)
		}
	}
	return out, nil
}

func timerKey(at time.Time, ws, task string) []byte {
	k := store.U64(uint64(at.UnixNano()))
	k = append(k, ws...)
	k = append(k, 0)
	return append(k, task...)
}

// AddTimer arms a timer for task at at.
func (t *Tx) AddTimer(at time.Time, task, kind string) error {
	b, err := t.top("timers")
	if err != nil {
		return err
	}
	return b.Put(timerKey(at, t.ws, task), []byte(kind))
}

// Timer is a due timer.
type Timer struct {
	At        time.Time
	Workspace string
	Task      string
	Kind      string
}

// DueTimers removes and returns up to max timers due at or before now.
func DueTimers(tx *store.Tx, now time.Time, max int) ([]Timer, error) {
	b := tx.Bolt().Bucket([]byte("timers"))
	if b == nil {
		return nil, nil
	}
	var out []Timer
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
		if len(k) < 9 {
			continue
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC()
		if at.After(now) {
			break
		}
		ws, task, ok := bytes.Cut(k[8:], []byte{0})
		if !ok {
			continue
		}
		out = append(out, Timer{At: at, Workspace: string(ws), Task: string(task), Kind: string(v)})
		keys = append(keys, append([]byte(nil), k...))
	}
	if tx.Writable() {
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// NextTimer returns the earliest timer's due time, and false when none.
func NextTimer(tx *store.Tx) (time.Time, bool) {
	b := tx.Bolt().Bucket([]byte("timers"))
	if b == nil {
		return time.Time{}, false
	}
	k, _ := b.Cursor().First()
	if len(k) < 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC(), true
}

// Delivery returns a delivery, or nil.
func (t *Tx) Delivery(id string) (*playsv1.Delivery, error) {
	b, err := t.bucket("deliveries")
	if err != nil || b == nil {
		return nil, err
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	d := &playsv1.Delivery{}
	if err := proto.Unmarshal(v, d); err != nil {
		return nil, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return d, nil
}

// PutDelivery stores d and keeps the pending index in step with its state.
func (t *Tx) PutDelivery(d *playsv1.Delivery) error {
	b, err := t.bucket("deliveries")
	if err != nil {
		return err
	}
	if err := store.PutProto(b, []byte(d.GetDeliveryId()), d); err != nil {
		return err
	}
	p, err := t.top("pending")
	if err != nil {
		return err
	}
	key := append(append([]byte(t.ws), 0), d.GetDeliveryId()...)
	if d.GetState() == playsv1.DeliveryState_DELIVERY_STATE_PENDING {
		return p.Put(key, nil)
	}
	return p.Delete(key)
}

// AddDelivery stores a new delivery and appends it to the delivery log.
func (t *Tx) AddDelivery(seq uint64, d *playsv1.Delivery) error {
	if err := t.PutDelivery(d); err != nil {
		return err
	}
	b, err := t.bucket("delivery_log")
	if err != nil {
		return err
	}
	return b.Put(store.U64(seq), []byte(d.GetDeliveryId()))
}

// DeliveryLog visits deliveries newest first, before the key before (nil:
// the newest), until fn returns false.
func (t *Tx) DeliveryLog(before []byte, fn func(key []byte, d *playsv1.Delivery) (bool, error)) error {
	b, err := t.bucket("delivery_log")
	if err != nil || b == nil {
		return err
	}
	return newestFirst(b, before, func(k, v []byte) (bool, error) {
		d, err := t.Delivery(string(v))
		if err != nil {
			return false, err
		}
		if d == nil {
			return true, nil // forgotten (right to be forgotten)
		}
		return fn(k, d)
	})
}

// Pending visits every pending delivery of every workspace (the outbox),
// for the delivery engine to resume from after a restart.
func Pending(tx *store.Tx, fn func(ws string, d *playsv1.Delivery) error) error {
	b := tx.Bolt().Bucket([]byte("pending"))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, _ []byte) error {
		ws, id, ok := bytes.Cut(k, []byte{0})
		if !ok {
			return nil
		}
		d, err := In(tx, string(ws)).Delivery(string(id))
		if err != nil || d == nil {
			return err
		}
		return fn(string(ws), d)
	})
}

// Forget erases what plays holds about an account (right to be
// forgotten): its facts (account, assignments, cooldowns), its tasks, and
// its deliveries, delivered or not. The delivery log keeps ids whose
// delivery is gone; readers skip them.
func (t *Tx) Forget(account string) error {
	if err := t.ForgetFacts(account); err != nil {
		return err
	}
	tasks, err := t.AccountTasks(account)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if err := t.DeleteTask(k.GetTaskId()); err != nil {
			return err
		}
	}
	b, err := t.bucket("deliveries")
	if err != nil {
		return err
	}
	var dels []string
	if err := b.ForEach(func(k, v []byte) error {
		d := &playsv1.Delivery{}
		if err := proto.Unmarshal(v, d); err != nil {
			return err
		}
		if d.GetAccountId() == account {
			dels = append(dels, string(k))
		}
		return nil
	}); err != nil {
		return err
	}
	p, err := t.top("pending")
	if err != nil {
		return err
	}
	for _, id := range dels {
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		if err := p.Delete(append(append([]byte(t.ws), 0), id...)); err != nil {
			return err
		}
	}
	return nil
}

// ForgetFacts erases what the Tx's facts space holds about an account:
// its row, the assignments that name it, and its cooldown rows. The two
// scans are over the workspace, which a tombstone (rare) can afford; an
// index per account would cost every assignment and firing a write.
func (t *Tx) ForgetFacts(account string) error {
	b, err := t.factsBucket("accounts")
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(account)); err != nil {
		return err
	}
	as, err := t.factsBucket("assignments")
	if err != nil {
		return err
	}
	if err := deleteWhere(as, func(k, v []byte) (bool, error) {
		a := &Assignment{}
		if err := json.Unmarshal(v, a); err != nil {
			return false, fmt.Errorf("decode assignment %q: %w", k, err)
		}
		return a.Account == account, nil
	}); err != nil {
		return err
	}
	cs, err := t.factsBucket("cooldowns")
	if err != nil {
		return err
	}
	// A cooldown key is play id, 0, account id; play ids hold no 0 byte.
	return deleteWhere(cs, func(k, _ []byte) (bool, error) {
		i := bytes.IndexByte(k, 0)
		return i >= 0 && string(k[i+1:]) == account, nil
	})
}

// deleteWhere deletes the keys of b for which match is true. Keys are
// collected first: bbolt forbids deleting under a ForEach.
func deleteWhere(b *bbolt.Bucket, match func(k, v []byte) (bool, error)) error {
	var gone [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		ok, err := match(k, v)
		if ok {
			gone = append(gone, append([]byte(nil), k...))
		}
		return err
	}); err != nil {
		return err
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Fired reports whether play already fired (or was held) for the
// upstream record src, live or in an earlier replay: a replay skips it,
// so history replayed never sends what was sent.
func (t *Tx) Fired(play, src string) (bool, error) {
	b, err := t.bucket("fired")
	if err != nil || b == nil {
		return false, err
	}
	return b.Get(firedKey(play, src)) != nil, nil
}

// MarkFired records that play fired for src.
func (t *Tx) MarkFired(play, src string) error {
	b, err := t.bucket("fired")
	if err != nil {
		return err
	}
	return b.Put(firedKey(play, src), []byte{})
}

func firedKey(play, src string) []byte { return append(append([]byte(play), 0), src...) }

// Replay returns a replay, or nil.
func (t *Tx) Replay(id string) (*playsv1.Replay, error) {
	b, err := t.bucket("replays")
	if err != nil || b == nil {
		return nil, err
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	r := &playsv1.Replay{}
	if err := proto.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("decode replay %s: %w", id, err)
	}
	return r, nil
}

// PutReplay stores r.
func (t *Tx) PutReplay(r *playsv1.Replay) error {
	b, err := t.bucket("replays")
	if err != nil {
		return err
	}
	return store.PutProto(b, []byte(r.GetReplayId()), r)
}

// Replays visits the workspace's replays until fn returns false.
func (t *Tx) Replays(fn func(*playsv1.Replay) bool) error {
	b, err := t.bucket("replays")
	if err != nil || b == nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r := &playsv1.Replay{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("decode replay %s: %w", k, err)
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// ErrNotFound is returned for an unknown task or delivery.
var ErrNotFound = errors.New("not found")
