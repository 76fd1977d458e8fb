package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
)

// config is everything the process needs. Every flag's default can be set by
// the environment variable CAIRN_<FLAG_NAME> (e.g. CAIRN_DEDUP_WINDOW), as
// for the shared flags of pkg/server.
type config struct {
	// Server is the shared process configuration: addresses, data
	// directory, keys, partitions, message size and deadlines.
	Server pkgserver.Config
	// Retention removes log records older than this; 0 keeps them forever.
	Retention time.Duration
	// RetentionInterval is the pause between retention passes.
	RetentionInterval time.Duration
	// DedupWindow is how long message ids are remembered.
	DedupWindow time.Duration
	// Limits bound events and batches (includes the future-time skew).
	Limits validate.Limits
	// MaxInflightBytes bounds batch bytes in process before ResourceExhausted.
	MaxInflightBytes int64
	// NoGroupCommit gives every batch its own fsync; for benchmarks only.
	NoGroupCommit bool
	// IndexInterval is the pause between passes that move staged index rows
	// into the timeline and subject indexes. Passes write in small
	// transactions between the ingest commits, so a short pause costs no
	// ack latency; a long one lets the backlog (and each pass) grow, which
	// measured worse on both counts: at 1s the index trailed a 60 s run at
	// full load by 22 s and p99 at 50,000 events/s was 30 ms, at 100ms 3 s
	// and 20 ms (services/ingestion/BENCHMARKS.md).
	IndexInterval time.Duration
	// GCPercent is the garbage collector's target (as GOGC) the process
	// sets at start; 0 leaves the runtime's alone, which parse chooses when
	// the operator set the GOGC environment variable.
	GCPercent int
	// MemoryLimitMiB is the soft memory limit (as GOMEMLIMIT, in MiB) the
	// process sets at start: with the raised GC target the heap would
	// otherwise grow to five times the live heap under load; near the limit
	// the runtime collects more often instead. 0 leaves the runtime's alone,
	// which parse chooses when the operator set GOMEMLIMIT.
	MemoryLimitMiB int64
	// PprofAddr, when set, serves net/http/pprof there, so that the running
	// binary can be profiled under load; empty (the default) serves nothing.
	PprofAddr string
}

// parse reads flags; the ingestion-specific ones take their defaults from
// the environment through getenv (the shared ones read it in pkg/server).
func parse(args []string, getenv func(string) string) (config, error) {
	// Attribution (user -> account) and messageId dedup are workspace-wide,
	// so ingestion scales by workspace, not by partition: replica k of
	// -replicas K takes the workspaces with stream.WorkspaceReplica == k and
	// writes every partition of its own log (docs/scaling.md).
	c := config{Server: pkgserver.Config{Name: "ingestion", ByWorkspace: true}, Limits: validate.DefaultLimits()}
	fs := flag.NewFlagSet("cairn-ingestion", flag.ContinueOnError)
	c.Server.RegisterFlags(fs)
	own := flag.NewFlagSet("", flag.ContinueOnError)
	own.DurationVar(&c.Retention, "retention", 0, "remove log records older than this (0 keeps them forever)")
	own.DurationVar(&c.RetentionInterval, "retention-interval", time.Minute, "pause between retention passes")
	own.DurationVar(&c.DedupWindow, "dedup-window", 7*24*time.Hour, "how long message ids are remembered for deduplication")
	own.DurationVar(&c.Limits.MaxSkew, "max-skew", c.Limits.MaxSkew, "flag events whose time is further than this in the future")
	own.IntVar(&c.Limits.MaxEventBytes, "max-event-bytes", c.Limits.MaxEventBytes, "largest event, in protobuf bytes")
	own.IntVar(&c.Limits.MaxBatchBytes, "max-batch-bytes", c.Limits.MaxBatchBytes, "largest batch, in protobuf bytes")
	own.IntVar(&c.Limits.MaxBatchEvents, "max-batch-events", c.Limits.MaxBatchEvents, "most events per batch")
	own.IntVar(&c.Limits.MaxMessageIDLen, "max-message-id-len", c.Limits.MaxMessageIDLen, "longest message id, in characters")
	own.IntVar(&c.Limits.MaxDepth, "max-depth", c.Limits.MaxDepth, "deepest nesting of properties, traits, context and integrations")
	own.IntVar(&c.Limits.MaxKeys, "max-keys", c.Limits.MaxKeys, "most keys per object (and items per list)")
	own.IntVar(&c.Limits.MaxStringLen, "max-string-len", c.Limits.MaxStringLen, "longest string value, in characters")
	own.Int64Var(&c.MaxInflightBytes, "max-inflight-bytes", 64<<20, "batch bytes in process before callers get ResourceExhausted")
	own.DurationVar(&c.IndexInterval, "index-interval", 100*time.Millisecond, "pause between passes that index staged events")
	// The live heap is small and every event allocates, so at Go's default
	// target (100) collection took ~10% of the CPU; 400 saved ~15% of CPU per
	// event for ~200 MB more heap under full load (BENCHMARKS.md).
	own.IntVar(&c.GCPercent, "gc-percent", 400, "garbage collector target (as GOGC) when the GOGC environment variable is unset")
	own.Int64Var(&c.MemoryLimitMiB, "memory-limit-mib", 512, "soft memory limit in MiB (as GOMEMLIMIT) when the GOMEMLIMIT environment variable is unset; 0: none")
	own.StringVar(&c.PprofAddr, "pprof-addr", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6101 (empty: off)")
	own.BoolVar(&c.NoGroupCommit, "no-group-commit", false, "one fsync per batch instead of shared commits (benchmarks only)")

	var envErrs []error
	own.VisitAll(func(f *flag.Flag) {
		env := pkgserver.EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("-%s: environment %s=%q: %w", f.Name, env, v, err))
			}
		}
		fs.Var(f.Value, f.Name, f.Usage+" (env "+env+")")
	})
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if getenv("GOGC") != "" {
		// The operator chose; the runtime has already applied it.
		c.GCPercent = 0
	}
	if getenv("GOMEMLIMIT") != "" {
		c.MemoryLimitMiB = 0
	}
	switch {
	case c.DedupWindow <= 0:
		return c, errors.New("-dedup-window: must be positive")
	case c.Retention < 0:
		return c, errors.New("-retention: must not be negative")
	case c.RetentionInterval <= 0:
		return c, errors.New("-retention-interval: must be positive")
	case c.IndexInterval <= 0:
		return c, errors.New("-index-interval: must be positive")
	case c.GCPercent < 0:
		return c, errors.New("-gc-percent: must not be negative")
	case c.MemoryLimitMiB < 0:
		return c, errors.New("-memory-limit-mib: must not be negative")
	case c.Limits.MaxBatchBytes >= c.Server.MaxRecvBytes:
		return c, fmt.Errorf("-max-batch-bytes: %d must be below -max-recv-bytes %d, so that oversized batches get a clear error", c.Limits.MaxBatchBytes, c.Server.MaxRecvBytes)
	case c.Limits.MaxEventBytes <= 0 || c.Limits.MaxBatchEvents <= 0 || c.Limits.MaxDepth <= 0 || c.Limits.MaxKeys <= 0 ||
		c.Limits.MaxStringLen <= 0 || c.Limits.MaxMessageIDLen <= 0:
		return c, errors.New("limits (-max-event-bytes, -max-batch-events, -max-depth, -max-keys, -max-string-len, -max-message-id-len) must be positive")
	}
	if err := c.Server.Validate(); err != nil {
		return c, err
	}
	return c, nil
}
