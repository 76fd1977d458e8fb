package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// Snapshot cache bounds. A snapshot is rebuilt as soon as a service's
// state moves (the fingerprint changes), and after MaxAge whatever the
// fingerprint says, for the changes no consumer cursor shows: a health
// score's 30-day change ageing, a journey applied without new events.
const (
	defaultMaxAge    = 30 * time.Second
	defaultSnapshots = 4
)

// Snapshots keeps, per caller key and report, the last answer the services
// gave and the fingerprint of their state it was built from, so that the
// dashboard's pages do not list every account of a workspace on each
// request. A fingerprint is every consumer's cursor of stages, health,
// routing and plays (their GetStatus, a few milliseconds) and routing's
// owners: a service's state changes only by applying records (its cursors
// move) or by an RPC that appends to its own log (which moves the cursors
// of the services downstream of it); owners are read on each request since
// editing one appends nothing. While a service is behind, the cached answer
// is as true as a fresh one would be: the banner says that the numbers are
// still moving.
type Snapshots struct {
	// MaxAge bounds how long a snapshot serves; 0 means 30s.
	MaxAge time.Duration
	// Size bounds the snapshots kept (each is a whole workspace's
	// accounts); 0 means 4. The least recently used goes first.
	Size int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	m  map[string]*snapshot
}

type snapshot struct {
	fingerprint string
	built       time.Time
	used        time.Time
	done        chan struct{}
	val         any
	err         error
}

// NewSnapshots returns a cache with the default bounds.
func NewSnapshots() *Snapshots { return &Snapshots{} }

func (s *Snapshots) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// get returns the value cached under key for fingerprint fp, building it
// (once, however many callers ask at the same time) when there is none,
// it was built from another fingerprint, or it is older than MaxAge. A
// failed build is not kept.
func (s *Snapshots) get(key, fp string, build func() (any, error)) (any, time.Time, error) {
	if s == nil {
		v, err := build()
		return v, time.Now(), err
	}
	maxAge := s.MaxAge
	if maxAge <= 0 {
		maxAge = defaultMaxAge
	}
	now := s.now()
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]*snapshot{}
	}
	e, ok := s.m[key]
	if ok && e.fingerprint == fp && now.Sub(e.built) < maxAge {
		e.used = now
		s.mu.Unlock()
		<-e.done
		if e.err == nil {
			return e.val, e.built, nil
		}
		// The build this caller waited on failed (perhaps its caller went
		// away): build again, for this caller alone.
		v, err := build()
		return v, now, err
	}
	e = &snapshot{fingerprint: fp, built: now, used: now, done: make(chan struct{})}
	s.m[key] = e
	s.evict()
	s.mu.Unlock()

	e.val, e.err = build()
	close(e.done)
	if e.err != nil {
		s.mu.Lock()
		if s.m[key] == e {
			delete(s.m, key)
		}
		s.mu.Unlock()
	}
	return e.val, e.built, e.err
}

// evict drops the least recently used snapshots beyond Size; s.mu is held.
func (s *Snapshots) evict() {
	size := s.Size
	if size <= 0 {
		size = defaultSnapshots
	}
	for len(s.m) > size {
		oldest := ""
		for k, e := range s.m {
			if oldest == "" || e.used.Before(s.m[oldest].used) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
}

// cacheKey is the key of one report for one caller: a hash of its
// Authorization header, so that callers never share answers (their keys
// may differ in what they may read) and no key is held in memory.
func cacheKey(report, authorization string) string {
	sum := sha256.Sum256([]byte(authorization))
	return report + ":" + hex.EncodeToString(sum[:])
}

// Fingerprint is the state of the services as a snapshot depends on it:
// every consumer's cursor of stages, health, routing and plays, and
// routing's owners. It is asked with the caller's key, so a caller who may
// not read the services' status gets their error, not a cached answer.
func Fingerprint(ctx context.Context, c Clients) (string, error) {
	var (
		wg       sync.WaitGroup
		backlogs []*commonv1.Backlog
		owners   []*routingv1.Owner
		errs     [2]error
	)
	wg.Go(func() { backlogs, errs[0] = fetchBacklogs(ctx, c) })
	wg.Go(func() { owners, errs[1] = listOwners(ctx, routingv1.NewRoutingServiceClient(c.Routing)) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return "", err
		}
	}
	var b strings.Builder
	for i, bl := range backlogs {
		fmt.Fprintf(&b, "%s[", processingServices[i])
		for _, cl := range bl.GetConsumers() {
			fmt.Fprintf(&b, "%s/%d=%d ", cl.GetSource(), cl.GetPartition(), cl.GetCursor())
		}
		b.WriteString("]")
	}
	h := sha256.New()
	for _, o := range owners {
		fmt.Fprintf(h, "%q %q %d\n", o.GetOwnerId(), o.GetName(), o.GetTeam())
	}
	fmt.Fprintf(&b, "owners=%x", h.Sum(nil))
	return b.String(), nil
}
