package store

import (
	"sync"

	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// AggregateCache keeps the decoded aggregates of the accounts the ingestion
// consumer wrote last, so that an account's next batch does not decode them
// again: under steady traffic every batch touches mostly the same accounts,
// and decoding them was a fifth of an event's cost.
//
// An entry holds the bytes the aggregates were written as, and is used only
// when the store still holds exactly those bytes, so anything that changed
// them since (a tombstone, a rolled back transaction) makes it miss: decoded
// aggregates are a function of their bytes, so a hit equals decoding them.
// The decoded aggregates are the ones the batch updated in place and then
// encoded, which is what an account with two events in one batch already
// relies on (the outcome does not depend on how the upstream log is
// batched). A batch takes its entries out while it changes them and puts
// them back after its last write, so a failed batch leaves none behind.
// It is safe for concurrent use.
type AggregateCache struct {
	mu    sync.Mutex
	m     map[[2]string]cachedAggregates
	size  int
	limit int
}

type cachedAggregates struct {
	enc []byte
	agg *account.Aggregates
}

// NewAggregateCache returns a cache holding up to limit bytes of encoded
// aggregates (decoded, an account takes a few times more).
func NewAggregateCache(limit int) *AggregateCache {
	return &AggregateCache{m: map[[2]string]cachedAggregates{}, limit: limit}
}

// take removes and returns k's entry.
func (c *AggregateCache) take(k [2]string) (cachedAggregates, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if ok {
		delete(c.m, k)
		c.size -= len(e.enc)
	}
	return e, ok
}

// put stores e as k's entry, evicting entries at random past the limit.
func (c *AggregateCache) put(k [2]string, e cachedAggregates) {
	n := len(e.enc)
	if n > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		c.size -= len(old.enc)
	}
	for ek, ev := range c.m {
		if c.size+n <= c.limit {
			break
		}
		delete(c.m, ek)
		c.size -= len(ev.enc)
	}
	c.m[k] = e
	c.size += n
}
