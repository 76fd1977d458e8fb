package app

import (
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/cache"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// accountCacheBytes bounds the account cache's estimated memory
// (cachedAccount.bytes): a few thousand accounts.
const accountCacheBytes = 32 << 20

// accountCache keeps the decoded state of the accounts the consumers wrote
// last (pkg/cache), keyed by workspace and account: decoding their aggregate
// and health was a third of a prospect event's cost. An entry is used only
// while the store holds exactly the bytes it was written as, so a rescore, a
// timer, the other consumer, a rolled back transaction or a deletion makes
// it miss. The decoded state is the one the batch updated in place and then
// encoded, which is what an account applied twice in one batch already
// relies on (the outcome does not depend on how the upstream log is
// batched).
type accountCache = cache.Map[[2]string, *cachedAccount]

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
	return cache.New[[2]string](limit, (*cachedAccount).bytes)
}
