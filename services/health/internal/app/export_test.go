package app

import (
	kv "github.com/cairn-dev/cairn/pkg/store"
)

// SetRescoreChunk changes how many accounts a rescore commits per transaction.
func SetRescoreChunk(a *App, n int) { a.chunk = n }

// ChunkEnds is chunkEnds.
func ChunkEnds(n, chunk int) []int { return chunkEnds(n, chunk) }

// BeforeRescoreWrite makes a rescore call fn before it writes chunk i.
func BeforeRescoreWrite(a *App, fn func(i int)) { a.beforeWrite = fn }

// EvaluateOne rescores one stored account at the clock's time through the
// incremental path (as an event or a stage change would), without changing
// its aggregate: the reference a full rescore must match.
func EvaluateOne(a *App, tx *kv.Tx, ws, acct string) error {
	b := a.newBatch(tx)
	st, err := b.get(ws, acct, false)
	if err != nil || st == nil {
		return err
	}
	if err := b.evaluate(st, a.clk.Now()); err != nil {
		return err
	}
	return b.flush(false)
}

// SetAccountCache replaces a's account cache by one of limit bytes (0:
// nothing is cached).
func SetAccountCache(a *App, limit int) { a.cache = newAccountCache(limit) }
