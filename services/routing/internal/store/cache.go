package store

import (
	"github.com/cairn-dev/cairn/pkg/cache"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// AggregateCache keeps the decoded aggregates of the accounts the ingestion
// consumer wrote last (pkg/cache), keyed by workspace and account: decoding
// them was a fifth of an event's cost. A deferring Tx uses an entry only
// while the store holds the bytes it was written as. The decoded aggregates
// are the ones the batch updated in place and then encoded, which is what an
// account with two events in one batch already relies on (the outcome does
// not depend on how the upstream log is batched).
type AggregateCache = cache.Map[[2]string, cachedAggregates]

type cachedAggregates struct {
	enc []byte
	agg *account.Aggregates
}

// NewAggregateCache returns a cache holding up to limit bytes of encoded
// aggregates (decoded, an account takes a few times more).
func NewAggregateCache(limit int) *AggregateCache {
	return cache.New[[2]string](limit, func(e cachedAggregates) int { return len(e.enc) })
}
