// Package store holds routing's typed bbolt buckets over pkg/store: owners,
// pools, config versions, assignments with their indexes, account ownership
// and product context, round-robin cursors, load counters, idempotency keys
// and the durable SLA timer bucket.
//
// Layout (all keys big-endian or NUL-separated so they sort usefully):
//
//	timers/<due unix ns, 8 bytes><workspace>\x00<assignment id> -> kind
//	ws/<workspace>/owners/<owner id>                   -> routingv1.Owner
//	ws/<workspace>/pools/<pool id>                     -> routingv1.Pool
//	ws/<workspace>/assignments/<assignment id>         -> routingv1.Assignment
//	ws/<workspace>/by_owner|by_state|by_type|by_account/<key>\x00<assignment id>
//	ws/<workspace>/by_email/<email>\x00<assignment id>
//	ws/<workspace>/armed/<assignment id>                -> timers key
//	ws/<workspace>/accounts/<account id>                -> Account (JSON)
//	ws/<workspace>/domains/<domain>                     -> account id
//	ws/<workspace>/users/<user id>                      -> User (JSON)
//	ws/<workspace>/cursors/<pool id>                    -> round-robin position
//	ws/<workspace>/load/<owner id>                      -> open, breached (2x8 bytes)
//	ws/<workspace>/requests/<request id>                -> assignment id
//	ws/<workspace>/touches/<len(account id), uvarint><account id><at unix s, 8 bytes><kind> -> empty
//
// The routing configuration's versions are pkg/store.Versions of kind
// "config": one definition id, "config", whose latest version is the
// active one (slot "config"). Schema 1 kept them in
// ws/<workspace>/configs/<version, 8 bytes>; OpenDB migrates such a file.
//
// This is the only package of the service that sees bbolt: everything else
// passes pkg/store's *store.Tx and calls the typed functions here.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/store"
)

// ErrNotFound is returned for a missing owner, pool, config or assignment
// (it is apierr.ErrNotFound).
var ErrNotFound = store.ErrNotFound

// timersBucket is the top-level bucket of pending SLA timers.
const timersBucket = "timers"

// Tx is one transaction scoped to a workspace.
type Tx struct {
	base *store.Tx
	tx   *bbolt.Tx
	ws   string
	// buckets caches bucket handles: the nested lookup is a measurable
	// part of firing timers in bulk.
	buckets map[string]*bbolt.Bucket
	// loads, when not nil, holds owners' load counters changed since
	// DeferLoad; FlushLoad writes them. Firing thousands of timers for a
	// few owners then writes each counter once per batch, not per timer.
	loads map[string][2]int64
	// cursors caches one cursor per bucket for lookups and deletes: a
	// repositioned cursor reuses its stack, where Bucket.Get and Delete
	// allocate a new cursor each call.
	cursors map[string]*bbolt.Cursor
	// aggs, when not nil, holds the aggregates read or written since
	// DeferAggregates, and dirty the accounts whose FlushAggregates must
	// write: an account with several events in one batch is then decoded
	// and encoded once, not once per event.
	aggs  map[string]*account.Aggregates
	dirty map[string]bool
	// cache, when not nil, holds aggregates decoded in earlier
	// transactions; deferred reads take theirs from it and
	// FlushAggregates puts what it writes back.
	cache *AggregateCache
	// version memoizes ConfigVersion (valid when versionOK), which a
	// consumer asks for on each event; putConfigVersion resets it.
	version   uint32
	versionOK bool
}

// seek positions name's cached cursor at key and returns the value stored
// under exactly key with the cursor; found is false when there is none (an
// index entry's empty value may be nil), c is nil when the bucket does not
// exist.
func (t *Tx) seek(name string, key []byte) (v []byte, found bool, c *bbolt.Cursor, err error) {
	c, ok := t.cursors[name]
	if !ok {
		var b *bbolt.Bucket
		if name == timersBucket {
			b = t.tx.Bucket([]byte(timersBucket))
		} else if b, err = t.bucket(name); err != nil {
			return nil, false, nil, err
		}
		if b == nil {
			return nil, false, nil, nil
		}
		c = b.Cursor()
		if t.cursors == nil {
			t.cursors = map[string]*bbolt.Cursor{}
		}
		t.cursors[name] = c
	}
	k, v := c.Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, false, c, nil
	}
	return v, true, c, nil
}

// cut deletes key from name and reports whether it was there, with the
// value it had (valid until the next change).
func (t *Tx) cut(name string, key []byte) ([]byte, bool, error) {
	v, found, c, err := t.seek(name, key)
	if err != nil || !found {
		return nil, false, err
	}
	if err := c.Delete(); err != nil {
		return nil, false, fmt.Errorf("delete %s: %w", name, err)
	}
	return v, true, nil
}

// DeferLoad keeps load counter changes in memory until FlushLoad; reads
// through this Tx see them.
func (t *Tx) DeferLoad() {
	if t.loads == nil {
		t.loads = map[string][2]int64{}
	}
}

// FlushLoad writes the load counters changed since DeferLoad and stops
// deferring.
func (t *Tx) FlushLoad() error {
	loads := t.loads
	t.loads = nil
	for owner, c := range loads {
		if err := t.putCounters(owner, c[0], c[1]); err != nil {
			return err
		}
	}
	return nil
}

// DeferAggregates keeps aggregates read and written through this Tx in
// memory until FlushAggregates; reads through this Tx see the writes. A
// caller must not change aggregates it does not put back. With a cache
// (nil: none), the reads take aggregates decoded earlier from it, and
// FlushAggregates puts the ones it writes in it.
func (t *Tx) DeferAggregates(cache *AggregateCache) {
	if t.aggs == nil {
		t.aggs, t.dirty = map[string]*account.Aggregates{}, map[string]bool{}
	}
	t.cache = cache
}

// FlushAggregates writes the aggregates put since DeferAggregates, in
// account order, and stops deferring.
func (t *Tx) FlushAggregates() error {
	aggs, dirty, cache := t.aggs, t.dirty, t.cache
	t.aggs, t.dirty, t.cache = nil, nil, nil
	ids := make([]string, 0, len(dirty))
	for id := range dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		enc := aggs[id].Marshal()
		if err := t.put("aggregates", []byte(id), enc); err != nil {
			return err
		}
		if cache != nil {
			// The transaction's writes are done with the aggregates: the
			// cache owns them now.
			cache.Put([2]string{t.ws, id}, cachedAggregates{enc: enc, agg: aggs[id]})
		}
	}
	return nil
}

// In scopes tx to a workspace.
func In(tx *store.Tx, workspace string) *Tx { return &Tx{base: tx, tx: tx.Bolt(), ws: workspace} }

// Base returns the transaction the Tx is scoped from, for what spans
// workspaces or lives outside this package (the routing log, cursors).
func (t *Tx) Base() *store.Tx { return t.base }

// Writable reports whether the transaction may write.
func (t *Tx) Writable() bool { return t.tx.Writable() }

// OnCommit runs fn once the transaction has committed.
func (t *Tx) OnCommit(fn func()) { t.base.OnCommit(fn) }

// Workspace returns the workspace the Tx is scoped to.
func (t *Tx) Workspace() string { return t.ws }

// bucket returns ws/<workspace>/<name>; nil in a read-only tx when missing.
func (t *Tx) bucket(name string) (*bbolt.Bucket, error) {
	if b, ok := t.buckets[name]; ok {
		return b, nil
	}
	b, err := store.Bucket(t.tx, "ws", t.ws, name)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	if b != nil {
		if t.buckets == nil {
			t.buckets = map[string]*bbolt.Bucket{}
		}
		t.buckets[name] = b
	}
	return b, nil
}

func (t *Tx) get(name string, key []byte) []byte {
	v, _, _, _ := t.seek(name, key)
	return v
}

func (t *Tx) put(name string, key, val []byte) error {
	b, err := t.bucket(name)
	if err != nil {
		return err
	}
	if err := b.Put(key, val); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

func (t *Tx) del(name string, key []byte) error {
	_, _, err := t.cut(name, key)
	return err
}

func (t *Tx) getProto(name, key string, m proto.Message) error {
	b, err := t.bucket(name)
	if err != nil {
		return err
	}
	return store.GetProto(b, []byte(key), m)
}

// Page is a page of keys: scan starts after After and yields at most Size.
type Page struct {
	// After is the key to start after (nil for the first page).
	After []byte
	// Size is the page size.
	Size int
}

// scan iterates a bucket (optionally under prefix) in key order from after,
// calling fn until it returns false or size items were accepted. It returns
// the last accepted key and whether more keys follow.
func (t *Tx) scan(name string, prefix []byte, p Page, fn func(k, v []byte) (accepted bool, err error)) (last []byte, more bool, err error) {
	b, err := t.bucket(name)
	if err != nil || b == nil {
		return nil, false, err
	}
	c := b.Cursor()
	var k, v []byte
	if len(p.After) > 0 {
		k, v = c.Seek(p.After)
		if k != nil && bytes.Equal(k, p.After) {
			k, v = c.Next()
		}
	} else {
		k, v = c.Seek(prefix)
	}
	n := 0
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n >= p.Size {
			return last, true, nil
		}
		ok, err := fn(k, v)
		if err != nil {
			return nil, false, err
		}
		if ok {
			n++
			last = append(last[:0:0], k...)
		}
	}
	return last, false, nil
}

// Owner returns an owner.
func (t *Tx) Owner(id string) (*routingv1.Owner, error) {
	o := &routingv1.Owner{}
	if err := t.getProto("owners", id, o); err != nil {
		return nil, fmt.Errorf("get owner %q: %w", id, err)
	}
	return o, nil
}

// PutOwner stores an owner.
func (t *Tx) PutOwner(o *routingv1.Owner) error {
	b, err := t.bucket("owners")
	if err != nil {
		return err
	}
	return store.PutProto(b, []byte(o.GetOwnerId()), o)
}

// DeleteOwner removes an owner; ErrNotFound if missing.
func (t *Tx) DeleteOwner(id string) error {
	if t.get("owners", []byte(id)) == nil {
		return fmt.Errorf("delete owner %q: %w", id, ErrNotFound)
	}
	return t.del("owners", []byte(id))
}

// ListOwners pages owners by id, optionally of one team.
func (t *Tx) ListOwners(p Page, team routingv1.Team) ([]*routingv1.Owner, []byte, bool, error) {
	var out []*routingv1.Owner
	last, more, err := t.scan("owners", nil, p, func(_, v []byte) (bool, error) {
		o := &routingv1.Owner{}
		if err := unmarshal(v, o); err != nil {
			return false, err
		}
		if team != routingv1.Team_TEAM_UNSPECIFIED && o.GetTeam() != team {
			return false, nil
		}
		out = append(out, o)
		return true, nil
	})
	return out, last, more, err
}

// Pool returns a pool.
func (t *Tx) Pool(id string) (*routingv1.Pool, error) {
	p := &routingv1.Pool{}
	if err := t.getProto("pools", id, p); err != nil {
		return nil, fmt.Errorf("get pool %q: %w", id, err)
	}
	return p, nil
}

// PutPool stores a pool.
func (t *Tx) PutPool(p *routingv1.Pool) error {
	b, err := t.bucket("pools")
	if err != nil {
		return err
	}
	return store.PutProto(b, []byte(p.GetPoolId()), p)
}

// DeletePool removes a pool; ErrNotFound if missing.
func (t *Tx) DeletePool(id string) error {
	if t.get("pools", []byte(id)) == nil {
		return fmt.Errorf("delete pool %q: %w", id, ErrNotFound)
	}
	return t.del("pools", []byte(id))
}

// ListPools pages pools by id.
func (t *Tx) ListPools(p Page) ([]*routingv1.Pool, []byte, bool, error) {
	var out []*routingv1.Pool
	last, more, err := t.scan("pools", nil, p, func(_, v []byte) (bool, error) {
		pl := &routingv1.Pool{}
		if err := unmarshal(v, pl); err != nil {
			return false, err
		}
		out = append(out, pl)
		return true, nil
	})
	return out, last, more, err
}

// configs keeps every workspace's routing configuration versions.
var configs = store.NewVersions("config", func() *routingv1.Config { return &routingv1.Config{} })

// The one definition id and active slot of the routing configuration: a
// workspace has one configuration, and its latest version is the active one.
const (
	configID   = "config"
	configSlot = "config"
)

// Config returns the active (latest) config, or ErrNotFound.
func (t *Tx) Config() (*routingv1.Config, error) {
	p, err := configs.Active(t.base, t.ws, configSlot)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("get config: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get config: %w", err)
	}
	return configs.Get(t.base, t.ws, p.ID, p.Version)
}

// ConfigVersion returns the active config's version without decoding it;
// 0 when none was applied.
// A Tx remembers it until it stores a config itself: configurations
// change through one Tx per transaction, the one that stores it.
func (t *Tx) ConfigVersion() uint32 {
	if t.versionOK {
		return t.version
	}
	p, err := configs.Active(t.base, t.ws, configSlot)
	if err != nil {
		return 0
	}
	t.version, t.versionOK = p.Version, true
	return p.Version
}

// PutConfig stores cfg as the next version, makes it the active one and
// sets cfg.version.
func (t *Tx) PutConfig(cfg *routingv1.Config) error {
	latest, err := configs.Latest(t.base, t.ws, configID)
	if err != nil {
		return err
	}
	cfg.Version = latest + 1
	return t.putConfigVersion(cfg)
}

// putConfigVersion stores cfg under its own version and makes it active.
func (t *Tx) putConfigVersion(cfg *routingv1.Config) error {
	t.versionOK = false
	if err := configs.Put(t.base, t.ws, configID, cfg.GetVersion(), cfg); err != nil {
		return err
	}
	return configs.SetActive(t.base, t.ws, configSlot, configID, cfg.GetVersion())
}

// ConfigVersions calls fn with the workspace's config versions, newest
// first, until fn returns false or an error.
func (t *Tx) ConfigVersions(fn func(*routingv1.Config) (bool, error)) error {
	return configs.List(t.base, t.ws, configID, 0, func(_ uint32, c *routingv1.Config) (bool, error) { return fn(c) })
}

// NextAssignmentID returns a new id that sorts by creation order.
func (t *Tx) NextAssignmentID() (string, error) {
	b, err := t.bucket("assignments")
	if err != nil {
		return "", err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return "", fmt.Errorf("next assignment id: %w", err)
	}
	return fmt.Sprintf("as_%012d", seq), nil
}

// Assignment returns an assignment.
func (t *Tx) Assignment(id string) (*routingv1.Assignment, error) {
	a := &routingv1.Assignment{}
	if err := t.getProto("assignments", id, a); err != nil {
		return nil, fmt.Errorf("get assignment %q: %w", id, err)
	}
	return a, nil
}

// Open reports whether an assignment counts against its owner's capacity.
func Open(s routingv1.AssignmentState) bool {
	switch s {
	case routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED:
		return true
	}
	return false
}

func indexKeys(a *routingv1.Assignment) map[string][]byte {
	id := a.GetAssignmentId()
	k := func(parts ...string) []byte { return []byte(strings.Join(append(parts, id), "\x00")) }
	m := map[string][]byte{
		"by_owner": k(a.GetOwnerId()),
		"by_state": k(stateName(a.GetState())),
		"by_type":  k(a.GetType().String()),
	}
	if a.GetAccountId() != "" {
		m["by_account"] = k(a.GetAccountId())
	}
	if e := strings.ToLower(a.GetLead().GetEmail()); e != "" {
		m["by_email"] = k(e)
	}
	return m
}

// PutAssignment stores a, keeping indexes and the owners' load counters in
// step with the previous version (if any).
func (t *Tx) PutAssignment(a *routingv1.Assignment) error {
	old, err := t.Assignment(a.GetAssignmentId())
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return t.putAssignment(old, a)
}

// UpdateAssignment stores a new version of an assignment whose previous
// version had owner prevOwner and state prevState (the only indexed fields
// that change after creation), without reading it back. It returns the
// stored encoding, which callers may reuse (e.g. to publish it) as long as
// they do not modify it.
func (t *Tx) UpdateAssignment(a *routingv1.Assignment, prevOwner string, prevState routingv1.AssignmentState) ([]byte, error) {
	id := a.GetAssignmentId()
	if err := t.updateIndexes(id, a.GetOwnerId(), a.GetState(), prevOwner, prevState); err != nil {
		return nil, err
	}
	enc, err := proto.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("marshal assignment %q: %w", id, err)
	}
	if err := t.put("assignments", []byte(id), enc); err != nil {
		return nil, err
	}
	return enc, nil
}

// PutAssignmentEncoded stores enc as an assignment's encoding, leaving
// indexes and load counters to UpdateIndexes.
func (t *Tx) PutAssignmentEncoded(id string, enc []byte) error {
	return t.put("assignments", []byte(id), enc)
}

// UpdateIndexes moves an assignment's index entries and load counters from
// prevOwner and prevState to owner and state; with PutAssignmentEncoded it
// is UpdateAssignment with the encoding made by the caller.
func (t *Tx) UpdateIndexes(id, owner string, state routingv1.AssignmentState, prevOwner string, prevState routingv1.AssignmentState) error {
	return t.updateIndexes(id, owner, state, prevOwner, prevState)
}

// updateIndexes moves an assignment's index entries and load counters from
// prevOwner and prevState to owner and state.
func (t *Tx) updateIndexes(id, owner string, state routingv1.AssignmentState, prevOwner string, prevState routingv1.AssignmentState) error {
	if prevOwner != owner {
		if err := t.move("by_owner", prevOwner, owner, id); err != nil {
			return err
		}
	}
	if prevState != state {
		if err := t.move("by_state", stateName(prevState), stateName(state), id); err != nil {
			return err
		}
	}
	if prevOwner != owner || prevState != state {
		if err := t.addLoad(prevOwner, prevState, -1); err != nil {
			return err
		}
		if err := t.addLoad(owner, state, 1); err != nil {
			return err
		}
	}
	return nil
}

// stateNames are the by_state index values: the enum's names, looked up
// once instead of through protobuf's reflection on every index move (two
// per fired timer).
var stateNames = func() map[routingv1.AssignmentState]string {
	m := map[routingv1.AssignmentState]string{}
	for v := range routingv1.AssignmentState_name {
		m[routingv1.AssignmentState(v)] = routingv1.AssignmentState(v).String()
	}
	return m
}()

// stateName is s.String().
func stateName(s routingv1.AssignmentState) string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return s.String()
}

// move re-keys an index entry from value from to value to.
func (t *Tx) move(index, from, to, id string) error {
	key := make([]byte, 0, len(from)+len(to)+2*len(id)+2)
	key = append(append(append(key, from...), 0), id...)
	if err := t.del(index, key); err != nil {
		return err
	}
	newKey := key[len(key):]
	newKey = append(append(append(newKey, to...), 0), id...)
	return t.put(index, newKey, nil)
}

func (t *Tx) putAssignment(old, a *routingv1.Assignment) error {
	newKeys := indexKeys(a)
	var oldKeys map[string][]byte
	if old != nil {
		oldKeys = indexKeys(old)
		for name, key := range oldKeys {
			if !bytes.Equal(newKeys[name], key) {
				if err := t.del(name, key); err != nil {
					return err
				}
			}
		}
	}
	for name, key := range newKeys {
		if !bytes.Equal(oldKeys[name], key) {
			if err := t.put(name, key, nil); err != nil {
				return err
			}
		}
	}
	if old == nil || old.GetOwnerId() != a.GetOwnerId() || old.GetState() != a.GetState() {
		if old != nil {
			if err := t.addLoad(old.GetOwnerId(), old.GetState(), -1); err != nil {
				return err
			}
		}
		if err := t.addLoad(a.GetOwnerId(), a.GetState(), 1); err != nil {
			return err
		}
	}
	b, err := t.bucket("assignments")
	if err != nil {
		return err
	}
	return store.PutProto(b, []byte(a.GetAssignmentId()), a)
}

func (t *Tx) addLoad(owner string, state routingv1.AssignmentState, sign int64) error {
	if owner == "" {
		return nil
	}
	open, breached := t.counters(owner)
	if Open(state) {
		open += sign
	}
	if state == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED {
		breached += sign
	}
	open, breached = max(open, 0), max(breached, 0)
	if t.loads != nil {
		t.loads[owner] = [2]int64{open, breached}
		return nil
	}
	return t.putCounters(owner, open, breached)
}

func (t *Tx) putCounters(owner string, open, breached int64) error {
	v := append(store.U64(uint64(open)), store.U64(uint64(breached))...)
	return t.put("load", []byte(owner), v)
}

func (t *Tx) counters(owner string) (open, breached int64) {
	if c, ok := t.loads[owner]; ok {
		return c[0], c[1]
	}
	v := t.get("load", []byte(owner))
	if len(v) != 16 {
		return 0, 0
	}
	return int64(store.ParseU64(v[:8])), int64(store.ParseU64(v[8:]))
}

// Load returns an owner's open and breached assignment counts.
func (t *Tx) Load(owner string) (open, breached int) {
	o, b := t.counters(owner)
	return int(o), int(b)
}

// Filter selects assignments.
type Filter struct {
	// OwnerID, State, Type and AccountID filter when set.
	OwnerID   string
	State     routingv1.AssignmentState
	Type      routingv1.HandoffType
	AccountID string
}

func (f Filter) match(a *routingv1.Assignment) bool {
	return (f.OwnerID == "" || a.GetOwnerId() == f.OwnerID) &&
		(f.State == 0 || a.GetState() == f.State) &&
		(f.Type == 0 || a.GetType() == f.Type) &&
		(f.AccountID == "" || a.GetAccountId() == f.AccountID)
}

// ListAssignments pages assignments matching f, walking the most selective
// index; the page key is that index's key, so a token is only meaningful with
// the same filter.
func (t *Tx) ListAssignments(f Filter, p Page) ([]*routingv1.Assignment, []byte, bool, error) {
	var out []*routingv1.Assignment
	accept := func(id []byte) (bool, error) {
		a, err := t.Assignment(string(id))
		if err != nil {
			return false, err
		}
		if !f.match(a) {
			return false, nil
		}
		out = append(out, a)
		return true, nil
	}
	idx := func(name, key string) ([]byte, bool, error) {
		prefix := []byte(key + "\x00")
		return t.scan(name, prefix, p, func(k, _ []byte) (bool, error) { return accept(k[len(prefix):]) })
	}
	var (
		last []byte
		more bool
		err  error
	)
	switch {
	case f.AccountID != "":
		last, more, err = idx("by_account", f.AccountID)
	case f.OwnerID != "":
		last, more, err = idx("by_owner", f.OwnerID)
	case f.State != 0:
		last, more, err = idx("by_state", stateName(f.State))
	case f.Type != 0:
		last, more, err = idx("by_type", f.Type.String())
	default:
		last, more, err = t.scan("assignments", nil, p, func(k, _ []byte) (bool, error) { return accept(k) })
	}
	return out, last, more, err
}

// ForEachAssignment calls fn for every assignment of the workspace.
func (t *Tx) ForEachAssignment(fn func(*routingv1.Assignment) error) error {
	b, err := t.bucket("assignments")
	if err != nil || b == nil {
		return err
	}
	return b.ForEach(func(_, v []byte) error {
		a := &routingv1.Assignment{}
		if err := unmarshal(v, a); err != nil {
			return err
		}
		return fn(a)
	})
}

// AssignmentsByEmail returns the ids of assignments of a lead email.
func (t *Tx) AssignmentsByEmail(email string) ([]string, error) {
	return t.ids("by_email", strings.ToLower(email))
}

// AssignmentsByAccount returns the ids of an account's assignments.
func (t *Tx) AssignmentsByAccount(account string) ([]string, error) {
	return t.ids("by_account", account)
}

func (t *Tx) ids(name, key string) ([]string, error) {
	var out []string
	prefix := []byte(key + "\x00")
	_, _, err := t.scan(name, prefix, Page{Size: 1 << 30}, func(k, _ []byte) (bool, error) {
		out = append(out, string(k[len(prefix):]))
		return true, nil
	})
	return out, err
}

// RequestAssignment returns the assignment created for an idempotency key, or "".
func (t *Tx) RequestAssignment(requestID string) string {
	return string(t.get("requests", []byte(requestID)))
}

// PutRequest records the assignment created for an idempotency key.
func (t *Tx) PutRequest(requestID, assignmentID string) error {
	return t.put("requests", []byte(requestID), []byte(assignmentID))
}

// Cursor returns a pool's round-robin position.
func (t *Tx) Cursor(pool string) uint64 { return store.ParseU64(t.get("cursors", []byte(pool))) }

// PutCursor stores a pool's round-robin position.
func (t *Tx) PutCursor(pool string, c uint64) error {
	return t.put("cursors", []byte(pool), store.U64(c))
}

// Account is what routing knows about an account: owners per team (from
// assignments and CRM traits such as csm_id / ae_id), traits, and the product
// context PQL rules see.
type Account struct {
	// Owners maps a team name ("TEAM_CSM") to the owner id.
	Owners map[string]string `json:"owners,omitempty"`
	// Traits are group traits.
	Traits map[string]any `json:"traits,omitempty"`
	// Domain is the account's email domain, for lead-to-account matching.
	Domain string `json:"domain,omitempty"`
	// Stage and PreviousStage come from the stages log: the account's stage
	// in the workspace's default journey and the one before it.
	Stage         string `json:"stage,omitempty"`
	PreviousStage string `json:"previous_stage,omitempty"`
	// HealthBand and HealthScore come from the health log.
	HealthBand  string  `json:"health_band,omitempty"`
	HealthScore float64 `json:"health_score,omitempty"`
	// Signals are the reasons of open signals, from stages and health.
	Signals []string `json:"signals,omitempty"`
	// SignalKinds maps the reason of each open health RISK or RENEWAL
	// signal to its kind ("risk", "renewal"): a handoff of that kind stays
	// open while one of its kind is.
	SignalKinds map[string]string `json:"signal_kinds,omitempty"`
	// SignalAttributes are the attributes of open signals, merged.
	SignalAttributes map[string]any `json:"signal_attributes,omitempty"`
	// PQLHolding are the PQL rules that currently hold.
	PQLHolding []string `json:"pql_holding,omitempty"`
	// Touches were the account's most recent CRM touches, up to 64, in
	// schema 2; schema 3 keeps every touch of the last TouchRetention in
	// the touches bucket (Tx.AddTouch), and OpenDB moves these there.
	Touches []Touch `json:"touches,omitempty"`
}

// Account returns an account; a missing one is empty, not an error.
func (t *Tx) Account(id string) (*Account, error) {
	a := &Account{}
	v := t.get("accounts", []byte(id))
	if v == nil {
		return a, nil
	}
	if err := json.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("decode account %q: %w", id, err)
	}
	return a, nil
}

// AccountListsPQL reports whether an account's stored record may list PQL
// rules holding (Account.PQLHolding), without decoding it: false when it
// lists none. PutAccount writes the list under the key "pql_holding" only
// when it is not empty; a trait that contains that text only makes the
// answer a needless true.
func (t *Tx) AccountListsPQL(id string) bool {
	return bytes.Contains(t.get("accounts", []byte(id)), []byte(`"pql_holding"`))
}

// PutAccount stores an account and its domain index.
func (t *Tx) PutAccount(id string, a *Account) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode account %q: %w", id, err)
	}
	if a.Domain != "" {
		if err := t.put("domains", []byte(strings.ToLower(a.Domain)), []byte(id)); err != nil {
			return err
		}
	}
	return t.put("accounts", []byte(id), v)
}

// AccountByDomain returns the account id of an email domain, or "".
func (t *Tx) AccountByDomain(domain string) string {
	return string(t.get("domains", []byte(strings.ToLower(domain))))
}

// DeleteAccount forgets an account (tombstone).
func (t *Tx) DeleteAccount(id string) error { return t.del("accounts", []byte(id)) }

// User is what routing knows about a user (lead) from identify calls.
type User struct {
	// Email is the user's email trait.
	Email string `json:"email,omitempty"`
	// AccountID is the account the user was last seen with.
	AccountID string `json:"account_id,omitempty"`
	// Traits are identify traits.
	Traits map[string]any `json:"traits,omitempty"`
}

// User returns a user; a missing one is empty, not an error.
func (t *Tx) User(id string) (*User, error) {
	u := &User{}
	v := t.get("users", []byte(id))
	if v == nil {
		return u, nil
	}
	if err := json.Unmarshal(v, u); err != nil {
		return nil, fmt.Errorf("decode user %q: %w", id, err)
	}
	return u, nil
}

// PutUser stores a user.
func (t *Tx) PutUser(id string, u *User) error {
	v, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode user %q: %w", id, err)
	}
	return t.put("users", []byte(id), v)
}

// DeleteUser forgets a user (tombstone).
func (t *Tx) DeleteUser(id string) error { return t.del("users", []byte(id)) }

// TimerKey is the key of a timer: due time then workspace and assignment.
func TimerKey(due time.Time, workspace, assignmentID string) []byte {
	k := store.U64(uint64(max(due.UnixNano(), 0)))
	k = append(k, workspace...)
	k = append(k, 0)
	return append(k, assignmentID...)
}

// Arm replaces the assignment's pending timer with one of kind at due.
func (t *Tx) Arm(assignmentID string, due time.Time, kind string) error {
	if err := t.Disarm(assignmentID); err != nil {
		return err
	}
	tb, err := t.tx.CreateBucketIfNotExists([]byte(timersBucket))
	if err != nil {
		return fmt.Errorf("open timers: %w", err)
	}
	key := TimerKey(due, t.ws, assignmentID)
	if err := tb.Put(key, []byte(kind)); err != nil {
		return fmt.Errorf("arm timer: %w", err)
	}
	return t.put("armed", []byte(assignmentID), key)
}

// Disarm deletes the assignment's pending timer, if any.
func (t *Tx) Disarm(assignmentID string) error {
	key := t.get("armed", []byte(assignmentID))
	if key == nil {
		return nil
	}
	key = append([]byte(nil), key...)
	if tb := t.tx.Bucket([]byte(timersBucket)); tb != nil {
		if err := tb.Delete(key); err != nil {
			return fmt.Errorf("disarm timer: %w", err)
		}
	}
	return t.del("armed", []byte(assignmentID))
}

// Timer is a pending SLA timer.
type Timer struct {
	// Key is the timers bucket key.
	Key []byte
	// Due is when it fires.
	Due time.Time
	// Workspace and AssignmentID name the assignment.
	Workspace, AssignmentID string
	// Kind is the SLA event kind.
	Kind string
}

func parseTimer(k, v []byte) (Timer, error) {
	if len(k) < 9 {
		return Timer{}, fmt.Errorf("timer key %x: too short", k)
	}
	ws, id, ok := strings.Cut(string(k[8:]), "\x00")
	if !ok {
		return Timer{}, fmt.Errorf("timer key %x: no separator", k)
	}
	return Timer{Key: append([]byte(nil), k...), Due: time.Unix(0, int64(store.ParseU64(k))).UTC(), Workspace: ws, AssignmentID: id, Kind: string(v)}, nil
}

// DueTimers returns up to limit timers due at or before now, earliest first.
func DueTimers(tx *store.Tx, now time.Time, limit int) ([]Timer, error) {
	return DueTimersAfter(tx, nil, now, limit)
}

// NextTimer returns the earliest pending timer's due time.
func NextTimer(tx *store.Tx) (time.Time, bool) {
	tb := tx.Bolt().Bucket([]byte(timersBucket))
	if tb == nil {
		return time.Time{}, false
	}
	k, _ := tb.Cursor().First()
	if k == nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(store.ParseU64(k))).UTC(), true
}

// ArmedTimer returns the assignment's pending timer, if it has one.
func (t *Tx) ArmedTimer(assignmentID string) (Timer, bool, error) {
	key := t.get("armed", []byte(assignmentID))
	if key == nil {
		return Timer{}, false, nil
	}
	tb := t.tx.Bucket([]byte(timersBucket))
	if tb == nil {
		return Timer{}, false, nil
	}
	v := tb.Get(key)
	if v == nil {
		return Timer{}, false, nil
	}
	tm, err := parseTimer(key, v)
	return tm, err == nil, err
}

// DeleteTimer removes a fired timer and its armed pointer.
func (t *Tx) DeleteTimer(tm Timer) error {
	if tb := t.tx.Bucket([]byte(timersBucket)); tb != nil {
		if err := tb.Delete(tm.Key); err != nil {
			return fmt.Errorf("delete timer: %w", err)
		}
	}
	if cur := t.get("armed", []byte(tm.AssignmentID)); bytes.Equal(cur, tm.Key) {
		return t.del("armed", []byte(tm.AssignmentID))
	}
	return nil
}

// PendingTimers counts pending timers.
func PendingTimers(tx *store.Tx) int {
	tb := tx.Bolt().Bucket([]byte(timersBucket))
	if tb == nil {
		return 0
	}
	n := 0
	c := tb.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func unmarshal(v []byte, m proto.Message) error {
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("unmarshal %T: %w", m, err)
	}
	return nil
}

// Aggregates returns an account's product aggregates (empty when none were
// kept yet).
func (t *Tx) Aggregates(accountID string) (*account.Aggregates, error) {
	if a, ok := t.aggs[accountID]; ok {
		return a, nil
	}
	v := t.get("aggregates", []byte(accountID))
	var a *account.Aggregates
	if v == nil {
		a = account.New(t.ws, accountID)
	} else if e, ok := t.takeCached(accountID); ok && bytes.Equal(e.enc, v) {
		a = e.agg
	} else {
		var err error
		if a, err = account.Unmarshal(v); err != nil {
			return nil, fmt.Errorf("decode aggregates of account %q: %w", accountID, err)
		}
	}
	if t.aggs != nil {
		t.aggs[accountID] = a
	}
	return a, nil
}

// takeCached takes an account's entry out of the cache of a deferring Tx.
func (t *Tx) takeCached(accountID string) (cachedAggregates, bool) {
	if t.cache == nil || t.aggs == nil {
		return cachedAggregates{}, false
	}
	return t.cache.Take([2]string{t.ws, accountID})
}

// PutAggregates stores an account's product aggregates; pkg/domain/account bounds
// their size per account.
func (t *Tx) PutAggregates(accountID string, a *account.Aggregates) error {
	if t.aggs != nil {
		t.aggs[accountID], t.dirty[accountID] = a, true
		return nil
	}
	return t.put("aggregates", []byte(accountID), a.Marshal())
}

// DeleteAggregates drops an account's product aggregates.
func (t *Tx) DeleteAggregates(accountID string) error {
	if t.aggs != nil {
		delete(t.aggs, accountID)
		delete(t.dirty, accountID)
	}
	return t.del("aggregates", []byte(accountID))
}

// AssignmentRaw returns an assignment's stored encoding, or nil. The bytes
// belong to the transaction: copy them to keep them after it ends, and do
// not use them after a change to the assignments.
func (t *Tx) AssignmentRaw(id string) []byte {
	v, _, _, _ := t.seek("assignments", []byte(id))
	return v
}

// OwnerRaw returns an owner's stored encoding, or nil; like AssignmentRaw.
func (t *Tx) OwnerRaw(id string) []byte { return t.get("owners", []byte(id)) }

// TakeTimer deletes the timer at tm.Key and returns its current kind; ok is
// false (and nothing changes) when no timer is pending under that key.
func (t *Tx) TakeTimer(tm Timer) (kind string, ok bool, err error) {
	v, ok, err := t.cut(timersBucket, tm.Key)
	if err != nil || !ok {
		return "", false, err
	}
	return string(v), true, nil
}

// ClearArmed deletes the assignment's armed pointer if it points at key
// (the caller has deleted that timer) and reports whether it did.
func (t *Tx) ClearArmed(assignmentID string, key []byte) (bool, error) {
	v, found, c, err := t.seek("armed", []byte(assignmentID))
	if err != nil || !found || !bytes.Equal(v, key) {
		return false, err
	}
	if err := c.Delete(); err != nil {
		return false, fmt.Errorf("delete armed: %w", err)
	}
	return true, nil
}

// DueTimersAfter returns up to limit timers due at or before now whose keys
// sort after after (all of them when after is nil), earliest first.
func DueTimersAfter(tx *store.Tx, after []byte, now time.Time, limit int) ([]Timer, error) {
	tb := tx.Bolt().Bucket([]byte(timersBucket))
	if tb == nil {
		return nil, nil
	}
	var out []Timer
	end := uint64(max(now.UnixNano(), 0))
	c := tb.Cursor()
	k, v := c.First()
	if after != nil {
		k, v = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && len(out) < limit; k, v = c.Next() {
		if store.ParseU64(k) > end {
			break
		}
		tm, err := parseTimer(k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, tm)
	}
	return out, nil
}
