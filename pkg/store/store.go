// Package store is Cairn's narrow wrapper around bbolt, modelled on etcd's
// storage backend: it owns opening (always with a lock timeout), the schema
// version and migrations, read and write transactions, and group commit.
// Services keep their own typed buckets on top of it.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/failpoint"
)

// ErrNotFound is returned when a key or bucket does not exist. It is
// apierr.ErrNotFound, so that a lookup that misses reaches a client as
// NotFound without each service translating it.
var ErrNotFound = apierr.ErrNotFound

// ErrClosed is returned by Commit after Close.
var ErrClosed = errors.New("store closed")

var (
	metaBucket = []byte("_meta")
	schemaKey  = []byte("schema_version")
)

// Options configure Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock held by another process
	// (default 5s), so a second instance fails fast instead of hanging.
	LockTimeout time.Duration
	// NoSync skips fsync. Only for tests and benchmarks: acknowledged writes
	// may be lost on a crash.
	NoSync bool
	// SchemaVersion is the version the caller's code expects. A file with a
	// newer version is refused; an older one is migrated.
	SchemaVersion uint32
	// Migrations upgrade the file: Migrations[v] moves a file from v-1 to v.
	Migrations map[uint32]func(*bbolt.Tx) error
	// MaxGroup caps how many Commit calls share one transaction (default 1024).
	MaxGroup int
}

// DB is an open bbolt file.
type DB struct {
	bolt *bbolt.DB
	path string

	commits chan *commitReq
	// closeMu orders Commit's enqueue before Close, so that nothing is
	// queued after the committer has drained and stopped.
	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}
	stopped chan struct{}
	maxGrp  int
	metrics *metrics
	// failing is the write failure the file is in, nil while writes
	// succeed (Trouble).
	failing atomic.Pointer[failure]
}

// failure is a run of failed writes: what failed and since when.
type failure struct {
	diskFull bool
	since    time.Time
}

// Trouble says, in words, what is wrong with writing the file: "" while
// writes succeed, else e.g. "disk full since 17:55:02 UTC: writes fail,
// reads still work". It clears at the next successful write.
func (db *DB) Trouble() string {
	f := db.failing.Load()
	if f == nil {
		return ""
	}
	what := "I/O error"
	if f.diskFull {
		what = "disk full"
	}
	return what + " since " + f.since.UTC().Format("15:04:05 MST") + ": writes fail, reads still work"
}

// wrote clears the failure once a write succeeds.
func (db *DB) wrote() {
	if db.failing.Load() != nil {
		db.failing.Store(nil)
	}
}

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, opts Options) (*DB, error) {
	// Crash tests arm failpoints in a child process through the
	// environment; a value that does not parse must stop the service.
	if err := failpoint.FromEnv(); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 1024
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create data dir for %s: %w", path, err)
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        opts.LockTimeout,
		NoSync:         opts.NoSync,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{
		bolt:    b,
		path:    path,
		commits: make(chan *commitReq, opts.MaxGroup),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		maxGrp:  opts.MaxGroup,
	}
	db.metrics = newMetrics(db.snapshot)
	if err := db.checkSchema(opts.SchemaVersion, opts.Migrations); err != nil {
		_ = b.Close()
		return nil, err
	}
	go db.committer()
	return db, nil
}

func (db *DB) checkSchema(want uint32, migrations map[uint32]func(*bbolt.Tx) error) error {
	return db.bolt.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return fmt.Errorf("create meta bucket: %w", err)
		}
		have := uint32(0)
		fresh := true
		if v := meta.Get(schemaKey); len(v) == 4 {
			have = binary.BigEndian.Uint32(v)
			fresh = false
		}
		if have > want {
			return fmt.Errorf("open %s: schema version %d is newer than this binary's %d", db.path, have, want)
		}
		if !fresh {
			for v := have + 1; v <= want; v++ {
				if m := migrations[v]; m != nil {
					if err := m(tx); err != nil {
						return fmt.Errorf("migrate %s to schema %d: %w", db.path, v, err)
					}
				}
			}
		}
		var buf [4]byte
		binary.BigEndian.PutUint32(buf[:], want)
		return meta.Put(schemaKey, buf[:])
	})
}

// SchemaVersion returns the version recorded in the file.
func (db *DB) SchemaVersion() (uint32, error) {
	var v uint32
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(metaBucket)
		if b == nil {
			return ErrNotFound
		}
		raw := b.Get(schemaKey)
		if len(raw) != 4 {
			return ErrNotFound
		}
		v = binary.BigEndian.Uint32(raw)
		return nil
	})
	return v, err
}

// Close stops group commit and closes the file. Pending Commit calls finish first.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	close(db.done)
	db.closeMu.Unlock()
	<-db.stopped
	return db.bolt.Close()
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(b *bbolt.Tx) error { return fn(&Tx{b: b}) })
}

// Update runs fn in its own write transaction (one fsync). Unlike Commit, fn
// runs exactly once. fn's own error is returned as it is; a failure to
// write the transaction is a *WriteError.
func (db *DB) Update(fn func(*Tx) error) error {
	start := time.Now()
	var fnErr error
	err := db.bolt.Update(func(b *bbolt.Tx) error {
		if fnErr = fn(&Tx{b: b}); fnErr == nil {
			failpoint.StoreBeforeCommit.Hit()
		}
		return fnErr
	})
	db.metrics.commitUpdate.Observe(time.Since(start).Seconds())
	if err != nil && fnErr == nil {
		return db.writeError(err)
	}
	if err == nil {
		failpoint.StoreAfterCommit.Hit()
		db.wrote()
	}
	return err
}

// WriteError is a transaction that could not be written: the disk is full,
// or the file system failed. It matches apierr.ErrUnavailable, so a client
// hears Unavailable with a retry delay rather than an internal error: the
// same request may succeed once space is freed, and nothing of it was
// stored.
type WriteError struct{ Err error }

func (e *WriteError) Error() string {
	if e.DiskFull() {
		return "storage write failed: disk full"
	}
	return "storage write failed: I/O error"
}

// Unwrap gives the cause and apierr.ErrUnavailable.
func (e *WriteError) Unwrap() []error { return []error{e.Err, apierr.ErrUnavailable} }

// DiskFull reports whether the write failed for want of space.
func (e *WriteError) DiskFull() bool {
	return errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT)
}

// writeError counts a failed write and wraps it.
func (db *DB) writeError(err error) error {
	we := &WriteError{Err: err}
	kind := "io"
	if we.DiskFull() {
		kind = "disk_full"
	}
	db.metrics.writeErrors.WithLabelValues(kind).Inc()
	if f := db.failing.Load(); f == nil || f.diskFull != we.DiskFull() {
		db.failing.Store(&failure{diskFull: we.DiskFull(), since: time.Now()})
	}
	return we
}

// Bolt exposes the underlying handle for stats and backups.
func (db *DB) Bolt() *bbolt.DB { return db.bolt }

// Path is the file's path.
func (db *DB) Path() string { return db.path }

// Size returns the file's size in bytes.
func (db *DB) Size() int64 {
	var n int64
	_ = db.bolt.View(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Bucket returns the nested bucket at path. In a writable transaction missing
// buckets are created; in a read-only one a missing bucket yields (nil, nil).
func Bucket(tx *bbolt.Tx, path ...string) (*bbolt.Bucket, error) {
	if len(path) == 0 {
		return nil, errEmptyPath
	}
	var b *bbolt.Bucket
	for i, name := range path {
		key := []byte(name)
		if tx.Writable() {
			var err error
			if i == 0 {
				b, err = tx.CreateBucketIfNotExists(key)
			} else {
				b, err = b.CreateBucketIfNotExists(key)
			}
			if err != nil {
				return nil, fmt.Errorf("create bucket %q: %w", path[:i+1], err)
			}
			continue
		}
		if i == 0 {
			b = tx.Bucket(key)
		} else {
			b = b.Bucket(key)
		}
		if b == nil {
			return nil, nil
		}
	}
	return b, nil
}

// U64 encodes v as 8 big-endian bytes, so keys sort numerically.
func U64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// ParseU64 decodes a key made by U64; short input decodes as 0.
func ParseU64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Unmarshal decodes a record a service stored itself into m, with the
// generated UnmarshalVT where m has one (gen/ has it for every Cairn
// message), else proto.Unmarshal. Stored records were checked when they
// were written, so the runtime's UTF-8 checks are not needed again, and
// scans decode many: the funnel over 100,000 accounts spent three quarters
// of its time in proto.Unmarshal. The bytes are copied, so m outlives the
// transaction.
func Unmarshal(raw []byte, m proto.Message) error {
	if vt, ok := m.(interface {
		UnmarshalVT([]byte) error
	}); ok {
		proto.Reset(m)
		return vt.UnmarshalVT(raw)
	}
	return proto.Unmarshal(raw, m)
}

// PutProto stores m under key.
func PutProto(b *bbolt.Bucket, key []byte, m proto.Message) error {
	raw, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal %T: %w", m, err)
	}
	return b.Put(key, raw)
}

// GetProto loads key into m, or returns ErrNotFound.
func GetProto(b *bbolt.Bucket, key []byte, m proto.Message) error {
	if b == nil {
		return ErrNotFound
	}
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := Unmarshal(raw, m); err != nil {
		return fmt.Errorf("unmarshal %T: %w", m, err)
	}
	return nil
}

// commitReq is one caller's share of a group commit.
type commitReq struct {
	ctx context.Context
	fn  func(*Tx) error
	err chan error
	// due is when the group must run at the latest, for a request that
	// may wait for others (CommitLinger); zero for one that may not.
	due time.Time
}

// Commit runs fn in a write transaction shared with other concurrent Commit
// calls, so that they pay for one fsync together. It returns once the
// transaction is durable (or fn's own error).
//
// fn may run more than once: if another member of the group fails, the
// group is rolled back and rerun without it. So fn must only read and write
// through tx, and hand anything it computes back through CommitValue rather
// than through variables it captures. (bbolt's DB.Batch has the same
// contract; docs/adr says why Cairn has its own.)
func (db *DB) Commit(ctx context.Context, fn func(*Tx) error) error {
	return db.commit(ctx, &commitReq{ctx: ctx, fn: fn, err: make(chan error, 1)})
}

// CommitLinger is Commit for a write that may wait up to linger for others
// to share its transaction. Group commit alone only merges writes that
// arrive while the previous transaction is being written, so a trickle of
// small writes (a consumer's partitions, each applying a few records) costs
// one transaction and fsync each. A lingering write holds the group open
// until its time is up, the group is full, or a write that may not wait
// arrives. Use it where latency matters less than the cost per write.
func (db *DB) CommitLinger(ctx context.Context, linger time.Duration, fn func(*Tx) error) error {
	req := &commitReq{ctx: ctx, fn: fn, err: make(chan error, 1)}
	if linger > 0 {
		req.due = time.Now().Add(linger)
	}
	return db.commit(ctx, req)
}

func (db *DB) commit(ctx context.Context, req *commitReq) error {
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case db.commits <- req:
		db.closeMu.RUnlock()
	case <-ctx.Done():
		db.closeMu.RUnlock()
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the write may
	// already be durable and the caller must not believe otherwise.
	return <-req.err
}

// CommitValue is Commit for a function that computes a result. It returns
// the result of the run that was committed (or of the run that failed), so
// that a rerun of fn never leaves a caller holding a value from a
// rolled-back attempt.
func CommitValue[T any](ctx context.Context, db *DB, fn func(*Tx) (T, error)) (T, error) {
	return CommitValueLinger(ctx, db, 0, fn)
}

// CommitValueLinger is CommitValue with CommitLinger's wait.
func CommitValueLinger[T any](ctx context.Context, db *DB, linger time.Duration, fn func(*Tx) (T, error)) (T, error) {
	var out T
	err := db.CommitLinger(ctx, linger, func(tx *Tx) error {
		v, err := fn(tx)
		out = v
		return err
	})
	return out, err
}

// committer drains the queue: whatever arrived while the previous fsync ran
// becomes the next group, so batching grows with load and adds no delay when idle.
func (db *DB) committer() {
	defer close(db.stopped)
	group := make([]*commitReq, 0, db.maxGrp)
	for {
		select {
		case req := <-db.commits:
			group = append(group[:0], req)
		case <-db.done:
			// Finish whatever is queued, then stop.
			for {
				select {
				case req := <-db.commits:
					db.runGroup([]*commitReq{req})
				default:
					return
				}
			}
		}
	drain:
		for len(group) < db.maxGrp {
			select {
			case req := <-db.commits:
				group = append(group, req)
			default:
				break drain
			}
		}
		group = db.gather(group)
		db.runGroup(group)
		// The slice is reused; a finished request left in it would keep
		// its closure's data (a decoded batch, an index snapshot) alive
		// until a group as large comes again: after an overload, for good.
		clear(group)
	}
}

// gather holds a group whose every member may wait (CommitLinger) open
// until the earliest is due, the group is full, a member that may not wait
// arrives, or the DB closes.
func (db *DB) gather(group []*commitReq) []*commitReq {
	var due time.Time
	for _, r := range group {
		if r.due.IsZero() {
			return group
		}
		if due.IsZero() || r.due.Before(due) {
			due = r.due
		}
	}
	wait := time.Until(due)
	if wait <= 0 {
		return group
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(group) < db.maxGrp {
		select {
		case req := <-db.commits:
			group = append(group, req)
			if req.due.IsZero() {
				return group
			}
		case <-t.C:
			return group
		case <-db.done:
			return group
		}
	}
	return group
}

func (db *DB) runGroup(group []*commitReq) {
	live := group[:0:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err <- err
			continue
		}
		live = append(live, r)
	}
	for len(live) > 0 {
		failed := -1
		var failErr error
		start := time.Now()
		err := db.bolt.Update(func(b *bbolt.Tx) error {
			tx := &Tx{b: b}
			for i, r := range live {
				if err := safeRun(r.fn, tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			failpoint.StoreBeforeCommit.Hit()
			return nil
		})
		if err == nil {
			failpoint.StoreAfterCommit.Hit()
			db.wrote()
			db.metrics.commitGroup.Observe(time.Since(start).Seconds())
			db.metrics.group.Observe(float64(len(live)))
			for _, r := range live {
				r.err <- nil
			}
			return
		}
		if failed < 0 {
			// The commit itself failed (disk full, I/O error): everyone hears it.
			werr := db.writeError(err)
			for _, r := range live {
				r.err <- werr
			}
			return
		}
		live[failed].err <- failErr
		live = append(live[:failed:failed], live[failed+1:]...)
	}
}

// safeRun keeps one caller's panic from killing the committer and everyone's writes.
func safeRun(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("commit function panicked: %v", r)
		}
	}()
	return fn(tx)
}

// Check opens the bbolt file at path read-only and runs bbolt's consistency
// check over every page, as `bbolt check` does. Crash and power-cut tests
// call it on a file a killed process left.
func Check(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("bbolt check of %s: %w", path, err)
		}
		return nil
	})
}
