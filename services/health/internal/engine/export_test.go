package engine

import (
	"go.etcd.io/bbolt"
)

// SetRescoreChunk changes how many accounts a rescore commits per transaction.
func SetRescoreChunk(e *Engine, n int) { e.chunk = n }

// ChunkEnds is chunkEnds.
func ChunkEnds(n, chunk int) []int { return chunkEnds(n, chunk) }

// BeforeRescoreWrite makes a rescore call fn before it writes chunk i.
func BeforeRescoreWrite(e *Engine, fn func(i int)) { e.beforeWrite = fn }

// EvaluateOne rescores one stored account at the clock's time through the
// incremental path (as an event or a stage change would), without changing
// its aggregate: the reference a full rescore must match.
func EvaluateOne(e *Engine, tx *bbolt.Tx, ws, acct string) error {
	b := e.newBatch(tx)
	st, err := b.get(ws, acct, false)
	if err != nil || st == nil {
		return err
	}
	if err := b.evaluate(st, e.clk.Now()); err != nil {
		return err
	}
	return b.flush()
}
