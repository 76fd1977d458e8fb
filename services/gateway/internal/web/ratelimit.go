package web

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// maxLimiters bounds the limiter table; idle (full) buckets are dropped when
// it is reached so that a flood of distinct keys cannot grow memory forever.
const maxLimiters = 10000

// RateLimiter is a per-key token bucket. Time comes from an injected clock so
// tests can refill buckets without sleeping.
type RateLimiter struct {
	rate  rate.Limit
	burst int
	clock clock.Clock

	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

// NewRateLimiter allows perSecond requests per key with bursts of burst.
// A non-positive perSecond disables limiting.
func NewRateLimiter(perSecond float64, burst int, c clock.Clock) *RateLimiter {
	if burst < 1 {
		burst = 1
	}
	return &RateLimiter{rate: rate.Limit(perSecond), burst: burst, clock: c, keys: make(map[string]*rate.Limiter)}
}

// Allow takes one token from key's bucket. When none is left it returns false
// and how long until one will be.
func (l *RateLimiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	now := l.clock.Now()
	l.mu.Lock()
	lim, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= maxLimiters {
			l.evictLocked(now)
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.keys[key] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *RateLimiter) evictLocked(now time.Time) {
	for k, lim := range l.keys {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.keys, k)
		}
	}
}

// RateLimited is the ResourceExhausted status, with RetryInfo, returned when a
// key has used up its bucket; WriteError answers it with 429 and Retry-After.
func RateLimited(wait time.Duration) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("rate limit exceeded for this API key; retry in %d s", RetryAfterSeconds(wait)))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return st.Err()
}
