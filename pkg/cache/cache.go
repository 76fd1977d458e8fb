// Package cache keeps decoded values between a consumer's batches.
//
// A consumer that applies events to per-account state decodes an account's
// stored bytes at the start of each batch and encodes them at the end. Under
// steady traffic every batch touches mostly the same accounts, so decoding
// them again was a large part of an event's cost (a fifth in routing, a third
// in health). A Map keeps the decoded value next to the bytes it was written
// as; the caller uses it only when the store still holds exactly those bytes,
// so anything that changed them since (another writer, a rolled back
// transaction, a deletion) makes it miss, and a hit equals decoding.
//
// Entries are taken out while a batch changes them (Take) and put back after
// its last write (Put), so a batch that fails leaves none behind.
package cache

import "sync"

// Map is a size-bounded map whose entries are taken out to be used. Past its
// limit it evicts entries at random (Go's map order), which needs no
// bookkeeping per access and suits traffic where the same accounts recur.
// It is safe for concurrent use.
type Map[K comparable, V any] struct {
	mu    sync.Mutex
	m     map[K]V
	size  int
	limit int
	cost  func(V) int
}

// New returns a Map holding entries whose costs sum to at most limit.
func New[K comparable, V any](limit int, cost func(V) int) *Map[K, V] {
	return &Map[K, V]{m: map[K]V{}, limit: limit, cost: cost}
}

// Take removes and returns k's entry.
func (c *Map[K, V]) Take(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	if ok {
		delete(c.m, k)
		c.size -= c.cost(v)
	}
	return v, ok
}

// Put stores v as k's entry, evicting others past the limit. An entry that
// alone exceeds the limit is not kept.
func (c *Map[K, V]) Put(k K, v V) {
	n := c.cost(v)
	if n > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		delete(c.m, k)
		c.size -= c.cost(old)
	}
	for ek, ev := range c.m {
		if c.size+n <= c.limit {
			break
		}
		delete(c.m, ek)
		c.size -= c.cost(ev)
	}
	c.m[k] = v
	c.size += n
}

// Len returns the number of entries and the sum of their costs.
func (c *Map[K, V]) Len() (entries, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m), c.size
}
