package app

import (
	"errors"
	"fmt"
	"strings"
	"time"

	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
)

// Config is everything the process needs. Every flag can also be set by the
// environment variable CAIRN_<FLAG_NAME> (e.g. CAIRN_DEDUP_WINDOW), as for
// the shared flags of pkg/server; the command line wins.
type Config struct {
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
	// MaxInflightBytesPerKey bounds them for one API key.
	MaxInflightBytesPerKey int64
	// Admission bounds the calls in process, overall and per key, checked
	// before their messages are read (pkg/admit).
	Admission Admission
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
	// ServeLinger is Options.ServeLinger (-serve-linger).
	ServeLinger time.Duration
	// LagBudget is Options.LagBudget (-lag-budget).
	LagBudget uint64
	// LogBackend is where the event log is served from: "bbolt" (the
	// log in ingestion.db, the default) or "jetstream" (copied from
	// ingestion.db to replicated NATS JetStream streams before each
	// acknowledgement, ADR 0021).
	LogBackend string
	// NATS configures the jetstream backend.
	NATS NATS
	// PprofAddr, when set, serves net/http/pprof there, so that the running
	// binary can be profiled under load; empty (the default) serves nothing.
	PprofAddr string
}

// Log backends (-log-backend).
const (
	BackendBBolt     = "bbolt"
	BackendJetStream = "jetstream"
)

// NATS is the configuration of the jetstream log backend.
type NATS struct {
	// URLs are the servers' client URLs, comma-separated (-nats-url).
	URLs string
	// Replicas is each partition stream's replica count (-nats-replicas).
	Replicas int
	// MaxBytes bounds each partition stream; a full stream refuses
	// appends (-nats-max-bytes, 0: unbounded).
	MaxBytes int64
	// Timeout bounds each request to the servers (-nats-timeout).
	Timeout time.Duration
}

// Parse reads the configuration from the command line args and, for every
// flag, the environment through getenv (pkg/server.ParseFlags). Errors name
// the flag (and the variable) and wrap pkg/server.ErrConfig.
func Parse(args []string, getenv func(string) string) (Config, error) {
	// Attribution (user -> account) and messageId dedup are workspace-wide,
	// so ingestion scales by workspace, not by partition: replica k of
	// -replicas K takes the workspaces with stream.WorkspaceReplica == k and
	// writes every partition of its own log (docs/scaling.md).
	c := Config{Server: pkgserver.Config{Name: "ingestion", OwnSubscribeAdmission: true, ByWorkspace: true}, Limits: validate.DefaultLimits()}
	f := pkgserver.NewFlags("ingestion", &c.Server)
	dur, integer := f.DurationVar, f.IntVar
	dur(&c.Retention, "retention", 0, "remove log records older than this (0 keeps them forever)")
	dur(&c.RetentionInterval, "retention-interval", time.Minute, "pause between retention passes")
	dur(&c.DedupWindow, "dedup-window", 7*24*time.Hour, "how long message ids are remembered for deduplication")
	dur(&c.Limits.MaxSkew, "max-skew", c.Limits.MaxSkew, "flag events whose time is further than this in the future")
	integer(&c.Limits.MaxEventBytes, "max-event-bytes", c.Limits.MaxEventBytes, "largest event, in protobuf bytes")
	integer(&c.Limits.MaxBatchBytes, "max-batch-bytes", c.Limits.MaxBatchBytes, "largest batch, in protobuf bytes")
	integer(&c.Limits.MaxBatchEvents, "max-batch-events", c.Limits.MaxBatchEvents, "most events per batch")
	integer(&c.Limits.MaxMessageIDLen, "max-message-id-len", c.Limits.MaxMessageIDLen, "longest message id, in characters")
	integer(&c.Limits.MaxDepth, "max-depth", c.Limits.MaxDepth, "deepest nesting of properties, traits, context and integrations")
	integer(&c.Limits.MaxKeys, "max-keys", c.Limits.MaxKeys, "most keys per object (and items per list)")
	integer(&c.Limits.MaxStringLen, "max-string-len", c.Limits.MaxStringLen, "longest string value, in characters")
	f.Int64Var(&c.MaxInflightBytes, "max-inflight-bytes", 64<<20, "batch bytes in process before callers get ResourceExhausted")
	f.Int64Var(&c.MaxInflightBytesPerKey, "max-inflight-bytes-per-key", 32<<20, "batch bytes in process for one API key before it gets ResourceExhausted")
	c.Admission.register(f)
	f.Uint64Var(&c.LagBudget, "lag-budget", 500000, "records the furthest-behind downstream consumer may have left to receive before writes get ResourceExhausted (0: no bound)")
	dur(&c.IndexInterval, "index-interval", 100*time.Millisecond, "pause between passes that index staged events")
	dur(&c.ServeLinger, "serve-linger", 5*time.Millisecond, "how long a caught-up Subscribe waits for more events before sending them (0: at once); fewer, larger sends when events trickle in")
	f.StringVar(&c.LogBackend, "log-backend", BackendBBolt, "where the event log is served from: bbolt (ingestion.db) or jetstream (replicated NATS JetStream streams, with -nats-url)")
	f.StringVar(&c.NATS.URLs, "nats-url", "", "NATS servers for -log-backend jetstream, comma-separated, e.g. nats://n1:4222,nats://n2:4222,nats://n3:4222")
	integer(&c.NATS.Replicas, "nats-replicas", 3, "replicas of each partition stream (-log-backend jetstream); 3 survives the loss of any one server")
	f.Int64Var(&c.NATS.MaxBytes, "nats-max-bytes", 0, "bytes each partition stream may hold before appends are refused (-log-backend jetstream; 0: unbounded)")
	dur(&c.NATS.Timeout, "nats-timeout", 2*time.Second, "bound on each request to the NATS servers, including waiting for a batch's acknowledgements (-log-backend jetstream)")
	f.StringVar(&c.PprofAddr, "pprof-addr", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6101 (empty: off)")
	f.BoolVar(&c.NoGroupCommit, "no-group-commit", false, "one fsync per batch instead of shared commits (benchmarks only)")
	f.Check(c.validate)
	if err := f.Parse(args, getenv); err != nil {
		return c, err
	}
	return c, nil
}

// validate reports the first invalid setting of ingestion's own, naming its
// flag (Flags.Parse checks the shared configuration).
func (c *Config) validate() error {
	switch {
	case c.DedupWindow <= 0:
		return errors.New("-dedup-window: must be positive")
	case c.Retention < 0:
		return errors.New("-retention: must not be negative")
	case c.RetentionInterval <= 0:
		return errors.New("-retention-interval: must be positive")
	case c.IndexInterval <= 0:
		return errors.New("-index-interval: must be positive")
	case c.ServeLinger < 0 || c.ServeLinger > time.Second:
		return errors.New("-serve-linger: must be between 0 and 1s")
	case c.MaxInflightBytes <= 0:
		return errors.New("-max-inflight-bytes: must be positive")
	case c.MaxInflightBytesPerKey <= 0 || c.MaxInflightBytesPerKey > c.MaxInflightBytes:
		return fmt.Errorf("-max-inflight-bytes-per-key: %d must be positive and at most -max-inflight-bytes %d", c.MaxInflightBytesPerKey, c.MaxInflightBytes)
	case c.Admission.validate() != nil:
		return c.Admission.validate()
	case c.LogBackend != BackendBBolt && c.LogBackend != BackendJetStream:
		return fmt.Errorf("-log-backend: %q is not one of %s, %s", c.LogBackend, BackendBBolt, BackendJetStream)
	case c.LogBackend == BackendJetStream && strings.TrimSpace(c.NATS.URLs) == "":
		return errors.New("-nats-url: required with -log-backend jetstream (the NATS servers' URLs, comma-separated)")
	case c.LogBackend == BackendBBolt && c.NATS.URLs != "":
		return errors.New("-nats-url: set, but -log-backend is bbolt: add -log-backend jetstream to use it")
	case c.LogBackend == BackendJetStream && (c.NATS.Replicas < 1 || c.NATS.Replicas > 5):
		return fmt.Errorf("-nats-replicas: %d must be between 1 and 5 (3 for production)", c.NATS.Replicas)
	case c.NATS.MaxBytes < 0:
		return errors.New("-nats-max-bytes: must not be negative")
	case c.NATS.Timeout <= 0:
		return errors.New("-nats-timeout: must be positive")
	case c.Limits.MaxBatchBytes >= c.Server.MaxRecvBytes:
		return fmt.Errorf("-max-batch-bytes: %d must be below -max-recv-bytes %d, so that oversized batches get a clear error", c.Limits.MaxBatchBytes, c.Server.MaxRecvBytes)
	case c.Limits.MaxEventBytes <= 0 || c.Limits.MaxBatchEvents <= 0 || c.Limits.MaxDepth <= 0 || c.Limits.MaxKeys <= 0 ||
		c.Limits.MaxStringLen <= 0 || c.Limits.MaxMessageIDLen <= 0:
		return errors.New("limits (-max-event-bytes, -max-batch-events, -max-depth, -max-keys, -max-string-len, -max-message-id-len) must be positive")
	}
	return nil
}
