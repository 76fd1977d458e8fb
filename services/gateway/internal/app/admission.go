package app

import (
	"flag"
	"time"

	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/services/gateway/internal/server"
)

// Admission bounds what the gateway handles at once (pkg/admit), per API
// key and overall: over a bound a request waits at most Wait for room,
// then is answered 429 with a Retry-After sized from the backlog, before
// its body is read. Zero bounds nothing.
type Admission struct {
	// Bytes and BytesPerKey bound the request bodies being handled
	// (-max-inflight-bytes, -max-inflight-bytes-per-key).
	Bytes, BytesPerKey int64
	// Requests and RequestsPerKey bound the tracking and REST calls with a
	// body (-max-inflight-requests, -max-inflight-requests-per-key).
	Requests, RequestsPerKey int64
	// Readers and ReadersPerKey bound REST reads (-max-readers,
	// -max-readers-per-key).
	Readers, ReadersPerKey int64
	// Wait is the longest a request waits for room (-admit-wait).
	Wait time.Duration
	// Target is the mean time a request may take before the overall
	// bounds are lowered (-admit-target; 0: fixed bounds).
	Target time.Duration
}

// defaultAdmission: measured on the benchmark machine (docs/benchmarks.md,
// "Overload"), 8 MiB of request bodies (about 90 Segment batches of 95 KB,
// whose decoding holds several times their size) keeps the gateway well
// under its 256 MiB memory limit, and the 100 ms target lowers the bounds
// under overload to what the gateway and ingestion finish in about that
// time (around 1 MiB of such batches there).
var defaultAdmission = Admission{
	Bytes: 8 << 20, BytesPerKey: 4 << 20,
	Requests: 256, RequestsPerKey: 64,
	Readers: 256, ReadersPerKey: 64,
	Wait: 100 * time.Millisecond, Target: 100 * time.Millisecond,
}

func (a *Admission) register(fs *flag.FlagSet) {
	d := defaultAdmission
	fs.Int64Var(&a.Bytes, "max-inflight-bytes", d.Bytes, "request body bytes handled at once before requests get 429 (0: no bound)")
	fs.Int64Var(&a.BytesPerKey, "max-inflight-bytes-per-key", d.BytesPerKey, "request body bytes handled at once for one API key (0: no bound)")
	fs.Int64Var(&a.Requests, "max-inflight-requests", d.Requests, "tracking and REST calls with a body handled at once before requests get 429 (0: no bound)")
	fs.Int64Var(&a.RequestsPerKey, "max-inflight-requests-per-key", d.RequestsPerKey, "calls with a body handled at once for one API key (0: no bound)")
	fs.Int64Var(&a.Readers, "max-readers", d.Readers, "REST reads handled at once before requests get 429 (0: no bound)")
	fs.Int64Var(&a.ReadersPerKey, "max-readers-per-key", d.ReadersPerKey, "REST reads handled at once for one API key (0: no bound)")
	fs.DurationVar(&a.Wait, "admit-wait", d.Wait, "longest a request waits for room before it gets 429")
	fs.DurationVar(&a.Target, "admit-target", d.Target, "mean time a request may take before the in-flight bounds are lowered, so that accepted requests stay fast (0: fixed bounds)")
}

// check reports every bad bound through bad, naming its flag.
func (a *Admission) check(maxBody int64, bad func(flag, format string, args ...any)) {
	for _, b := range []struct {
		flag, perFlag string
		total, per    int64
	}{
		{"max-inflight-bytes", "max-inflight-bytes-per-key", a.Bytes, a.BytesPerKey},
		{"max-inflight-requests", "max-inflight-requests-per-key", a.Requests, a.RequestsPerKey},
		{"max-readers", "max-readers-per-key", a.Readers, a.ReadersPerKey},
	} {
		switch {
		case b.total < 0:
			bad(b.flag, "%d is negative", b.total)
		case b.per < 0:
			bad(b.perFlag, "%d is negative", b.per)
		case b.total > 0 && b.per > b.total:
			bad(b.perFlag, "%d is above -%s %d", b.per, b.flag, b.total)
		}
	}
	// A body the limit allows must fit the byte bounds, or it could never
	// be admitted along with anything else.
	for _, b := range []struct {
		flag string
		n    int64
	}{{"max-inflight-bytes-per-key", a.BytesPerKey}, {"max-inflight-bytes", a.Bytes}} {
		if b.n > 0 && maxBody > 0 && b.n < maxBody {
			bad(b.flag, "%d is below -max-body %d", b.n, maxBody)
		}
	}
	if a.Wait < 0 {
		bad("admit-wait", "%v is negative", a.Wait)
	}
	if a.Target < 0 {
		bad("admit-target", "%v is negative", a.Target)
	}
}

// controllers builds the gateway's admission controllers.
func (a Admission) controllers(clk clock.Clock) *server.Admission {
	return &server.Admission{
		Writes: admit.New("gateway writes", admit.Limits{
			Requests: a.Requests, KeyRequests: a.RequestsPerKey, Bytes: a.Bytes, KeyBytes: a.BytesPerKey, Wait: a.Wait, Target: a.Target,
		}, clk),
		Reads: admit.New("gateway reads", admit.Limits{Requests: a.Readers, KeyRequests: a.ReadersPerKey, Wait: a.Wait, Target: a.Target}, clk),
	}
}
