package app

import (
	"sync"

	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// cacheSize bounds the decoded live account states kept between
// transactions.
const cacheSize = 8192

// stateCache keeps decoded live account states between transactions so
// that an account's next event skips decoding. An entry is valid only while
// the stored bytes equal the bytes it was written as; a batch takes the
// entry out while it works on it and puts it back only when its transaction
// commits, so a rolled-back transaction can never leave a mutated state
// behind.
type stateCache struct {
	mu sync.Mutex
	m  map[string]*cacheEntry
}

type cacheEntry struct {
	aj, aggs []byte
	acc      *store.Account
}

func newStateCache() *stateCache { return &stateCache{m: make(map[string]*cacheEntry)} }

// take removes and returns the entry for key, or nil.
func (c *stateCache) take(key string) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	delete(c.m, key)
	return e
}

// put stores an entry, evicting an arbitrary one when full.
func (c *stateCache) put(key string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= cacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
}
