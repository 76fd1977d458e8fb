package app

import (
	"sync"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// accountCacheBytes bounds the account cache's estimated memory
// (cachedAccount.bytes): a few thousand accounts.
const accountCacheBytes = 32 << 20

// accountCache keeps the decoded state of the accounts the consumers wrote
// last, so that an account's next batch does not decode its aggregate and
// health again: under steady traffic every batch touches mostly the same
// accounts, and decoding them was a third of a prospect event's cost.
//
// An entry holds the bytes it was written as, and is used only when the
// store still holds exactly those bytes, so anything that changed the
// account since (a rescore, a timer, the other consumer, a rolled back
// transaction, a deletion) makes it miss: a decoded state is a function of
// its bytes, so a hit equals decoding them. The decoded state is the one
// the batch updated in place and then encoded, which is what an account
// applied twice in one batch already relies on (the outcome does not depend
// on how the upstream log is batched). A batch takes its entries out while
// it changes them and puts them back after its last write, so a failed
// batch leaves none behind.
type accountCache struct {
	mu    sync.Mutex
	m     map[[2]string]*cachedAccount
	size  int
	limit int
}

type cachedAccount struct {
	stored store.Stored
	acc    *store.Account
	health *healthv1.AccountHealth
}

// bytes estimates the memory e holds: its encodings, and a decoded
// aggregate takes about 16 times its encoding (maps of short strings; 9.6 KB
// for the 550 bytes of the benchmarks' 60-day account).
func (c *cachedAccount) bytes() int {
	n := len(c.stored.Agg) + len(c.stored.Meta) + len(c.stored.Health)
	return 1024 + 17*n
}

func newAccountCache(limit int) *accountCache {
	return &accountCache{m: map[[2]string]*cachedAccount{}, limit: limit}
}

// take removes and returns k's entry (nil when there is none).
func (c *accountCache) take(k [2]string) *cachedAccount {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	delete(c.m, k)
	c.size -= e.bytes()
	return e
}

// put stores e as k's entry, evicting entries at random past the limit.
func (c *accountCache) put(k [2]string, e *cachedAccount) {
	n := e.bytes()
	if n > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		c.size -= old.bytes()
	}
	if c.size+n > c.limit {
		for ek, ev := range c.m {
			delete(c.m, ek)
			c.size -= ev.bytes()
			if c.size+n <= c.limit {
				break
			}
		}
	}
	c.m[k] = e
	c.size += n
}
