package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
)

// config is everything the process needs. Every flag's default can be set by
// the environment variable CAIRN_<FLAG_NAME> (e.g. CAIRN_GRPC_ADDR), as for
// the other Cairn services.
type config struct {
	// GRPCAddr is the gRPC listen address.
	GRPCAddr string
	// MetricsAddr serves Prometheus /metrics; empty disables it.
	MetricsAddr string
	// DataDir holds ingestion.db and, by default, keys.json.
	DataDir string
	// KeysFile is the API key file; empty means DataDir/keys.json.
	KeysFile string
	// Partitions is the log's partition count, the same for every service.
	Partitions uint
	// MaxRecvBytes bounds one gRPC message; it must exceed the batch limit
	// so that oversized batches get a field-naming InvalidArgument.
	MaxRecvBytes int
	// ShutdownTimeout bounds the graceful stop.
	ShutdownTimeout time.Duration
	// Retention removes log records older than this; 0 keeps them forever.
	Retention time.Duration
	// DedupWindow is how long message ids are remembered.
	DedupWindow time.Duration
	// Limits bound events and batches (includes the future-time skew).
	Limits validate.Limits
	// MaxInflightBytes bounds batch bytes in process before ResourceExhausted.
	MaxInflightBytes int64
	// NoGroupCommit gives every batch its own fsync; for benchmarks only.
	NoGroupCommit bool
}

// dbPath is the service's bbolt file.
func (c config) dbPath() string { return filepath.Join(c.DataDir, "ingestion.db") }

// keysPath is the key file.
func (c config) keysPath() string {
	if c.KeysFile != "" {
		return c.KeysFile
	}
	return filepath.Join(c.DataDir, "keys.json")
}

func envName(flagName string) string {
	return "CAIRN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads flags, with defaults taken from the environment through getenv.
func parse(args []string, getenv func(string) string) (config, error) {
	c := config{Limits: validate.DefaultLimits()}
	fs := flag.NewFlagSet("cairn-ingestion", flag.ContinueOnError)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:7101", "gRPC listen address")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9101", "Prometheus /metrics listen address (empty: off)")
	fs.StringVar(&c.DataDir, "data", "./data", "data directory (ingestion.db, keys.json)")
	fs.StringVar(&c.KeysFile, "keys", "", "API key file (default <data>/keys.json)")
	fs.UintVar(&c.Partitions, "partitions", 8, "log partitions, the same for every service")
	fs.IntVar(&c.MaxRecvBytes, "max-recv-bytes", 4<<20, "largest gRPC message accepted")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on the graceful stop")
	fs.DurationVar(&c.Retention, "retention", 0, "remove log records older than this (0 keeps them forever)")
	fs.DurationVar(&c.DedupWindow, "dedup-window", 7*24*time.Hour, "how long message ids are remembered for deduplication")
	fs.DurationVar(&c.Limits.MaxSkew, "max-skew", c.Limits.MaxSkew, "flag events whose time is further than this in the future")
	fs.IntVar(&c.Limits.MaxEventBytes, "max-event-bytes", c.Limits.MaxEventBytes, "largest event, in protobuf bytes")
	fs.IntVar(&c.Limits.MaxBatchBytes, "max-batch-bytes", c.Limits.MaxBatchBytes, "largest batch, in protobuf bytes")
	fs.IntVar(&c.Limits.MaxBatchEvents, "max-batch-events", c.Limits.MaxBatchEvents, "most events per batch")
	fs.IntVar(&c.Limits.MaxMessageIDLen, "max-message-id-len", c.Limits.MaxMessageIDLen, "longest message id, in characters")
	fs.IntVar(&c.Limits.MaxDepth, "max-depth", c.Limits.MaxDepth, "deepest nesting of properties, traits, context and integrations")
	fs.IntVar(&c.Limits.MaxKeys, "max-keys", c.Limits.MaxKeys, "most keys per object (and items per list)")
	fs.IntVar(&c.Limits.MaxStringLen, "max-string-len", c.Limits.MaxStringLen, "longest string value, in characters")
	fs.Int64Var(&c.MaxInflightBytes, "max-inflight-bytes", 64<<20, "batch bytes in process before callers get ResourceExhausted")
	fs.BoolVar(&c.NoGroupCommit, "no-group-commit", false, "one fsync per batch instead of shared commits (benchmarks only)")

	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.Partitions == 0 || c.Partitions > 4096:
		return c, errors.New("-partitions: must be between 1 and 4096")
	case c.DedupWindow <= 0:
		return c, errors.New("-dedup-window: must be positive")
	case c.Retention < 0:
		return c, errors.New("-retention: must not be negative")
	case c.Limits.MaxBatchBytes >= c.MaxRecvBytes:
		return c, fmt.Errorf("-max-batch-bytes: %d must be below -max-recv-bytes %d", c.Limits.MaxBatchBytes, c.MaxRecvBytes)
	case c.Limits.MaxEventBytes <= 0 || c.Limits.MaxBatchEvents <= 0 || c.Limits.MaxDepth <= 0 || c.Limits.MaxKeys <= 0:
		return c, errors.New("limits must be positive")
	case c.GRPCAddr == "":
		return c, errors.New("-grpc-addr: required")
	}
	return c, nil
}
