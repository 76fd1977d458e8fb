package store

import (
	"errors"

	"go.etcd.io/bbolt"
)

// Tx is one bbolt transaction, read-only or writable. It is the one
// transaction type every Cairn package passes around: application code
// hands it from a consumer or a use case to the store that reads and writes
// buckets, and never sees bbolt itself. Only store packages (this one,
// pkg/stream and each service's internal/store) reach beneath it, with Bolt.
type Tx struct{ b *bbolt.Tx }

// Wrap makes a Tx of a bbolt transaction opened elsewhere: by a migration,
// or by a store package that already holds one.
func Wrap(b *bbolt.Tx) *Tx { return &Tx{b: b} }

// Bolt returns the bbolt transaction. Only store packages call it.
func (t *Tx) Bolt() *bbolt.Tx { return t.b }

// Writable reports whether the transaction may write.
func (t *Tx) Writable() bool { return t.b.Writable() }

// OnCommit runs fn after the transaction has committed (and, for writable
// transactions, been fsynced unless the DB was opened with NoSync). A
// rolled-back attempt of a group commit never runs it.
func (t *Tx) OnCommit(fn func()) { t.b.OnCommit(fn) }

// Bucket returns the nested bucket at path, as the package function Bucket
// does.
func (t *Tx) Bucket(path ...string) (*bbolt.Bucket, error) { return Bucket(t.b, path...) }

var errEmptyPath = errors.New("bucket: empty path")
