// Package app wires the gateway: its configuration (Parse) and the process
// (Run): keyring, upstream connections routed across replicas, the HTTP
// handler of package server, and the HTTP and metrics listeners.
package app

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/pkg/server"
)

// Config is the gateway's configuration, from flags or CAIRN_* variables
// (server.ParseFlags: the flag wins).
type Config struct {
	// HTTPAddr serves the API, tracking endpoints and dashboard
	// (-http-addr).
	HTTPAddr string
	// MetricsAddr serves /metrics (-metrics-addr).
	MetricsAddr string
	// IngestionAddr, StagesAddr, HealthAddr and RoutingAddr are the
	// upstream gRPC services (-ingestion-addr, ...); each may list the
	// service's replicas comma-separated in replica order.
	IngestionAddr, StagesAddr, HealthAddr, RoutingAddr string
	// PlaysAddr is the plays service; empty when the deployment runs none.
	PlaysAddr string
	// Partitions is the suite's -partitions, needed to find an account's
	// replica.
	Partitions uint32
	// KeysFile is the shared keyring, used to check keys before forwarding
	// (-keys).
	KeysFile string
	// CORSOrigins may call the REST API from browsers ("*" for any)
	// (-cors-origins, comma-separated).
	CORSOrigins []string
	// MaxBody caps request bodies in bytes (-max-body).
	MaxBody int64
	// Rate and Burst bound requests per second per API key; rate 0
	// disables limiting (-rate, -burst).
	Rate  float64
	Burst int
	// Admission bounds the requests and body bytes handled at once, per
	// key and overall (admission.go).
	Admission Admission
	// MemoryLimitMiB is the soft memory limit (as GOMEMLIMIT, in MiB) set
	// at start when GOMEMLIMIT is unset (-memory-limit-mib); 0: none.
	MemoryLimitMiB int64
	// ShutdownTimeout bounds graceful shutdown (-shutdown-timeout).
	ShutdownTimeout time.Duration
	// Pprof serves net/http/pprof on the metrics address (-pprof), as the
	// services' -pprof does.
	Pprof bool
}

// Parse reads the command line and the environment (CAIRN_<FLAG>) into a
// Config. Every bad value is a configuration error (server.ErrConfig)
// naming its flag.
func Parse(args []string, getenv func(string) string) (Config, error) {
	var (
		c          Config
		partitions uint
		cors       string
	)
	fs := flag.NewFlagSet("cairn-gateway", flag.ContinueOnError)
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", server.DefaultMetricsAddr("gateway"), "Prometheus /metrics listen address")
	fs.StringVar(&c.IngestionAddr, "ingestion-addr", server.DefaultGRPCAddr("ingestion"), "ingestion gRPC address, or its replicas' addresses comma-separated in replica order (split by workspace)")
	fs.StringVar(&c.StagesAddr, "stages-addr", server.DefaultGRPCAddr("stages"), "stages gRPC address, or its replicas' addresses comma-separated in replica order")
	fs.StringVar(&c.HealthAddr, "health-addr", server.DefaultGRPCAddr("health"), "health gRPC address, or its replicas' addresses comma-separated in replica order")
	fs.UintVar(&partitions, "partitions", server.DefaultPartitions, "log partitions, the services' -partitions (routes accounts to replicas)")
	fs.StringVar(&c.PlaysAddr, "plays-addr", "", "plays gRPC address (e.g. "+server.DefaultGRPCAddr("plays")+"), or its replicas' addresses comma-separated in replica order (split by workspace); empty (the default): no plays service, its REST paths answer 404")
	fs.StringVar(&c.RoutingAddr, "routing-addr", server.DefaultGRPCAddr("routing"), "routing gRPC address, or its replicas' addresses comma-separated in replica order (split by workspace)")
	fs.StringVar(&c.KeysFile, "keys", "./data/keys.json", "keyring file shared with the services")
	fs.StringVar(&cors, "cors-origins", "", `comma-separated origins allowed to call the REST API ("*" for any)`)
	fs.Int64Var(&c.MaxBody, "max-body", 1<<20, "maximum request body in bytes")
	fs.Float64Var(&c.Rate, "rate", 1000, "requests per second allowed per API key (0 disables)")
	fs.IntVar(&c.Burst, "burst", 2000, "burst of requests allowed per API key")
	c.Admission.register(fs)
	fs.Int64Var(&c.MemoryLimitMiB, "memory-limit-mib", 256, "soft memory limit in MiB (as GOMEMLIMIT) when the GOMEMLIMIT environment variable is unset; 0: none")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "graceful shutdown limit")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on the metrics address")
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return c, err
	}
	c.CORSOrigins = server.SplitList(cors)

	var errs []error
	bad := func(flag, format string, a ...any) {
		errs = append(errs, fmt.Errorf("-%s: "+format, append([]any{flag}, a...)...))
	}
	for _, a := range []struct{ flag, addr string }{{"http-addr", c.HTTPAddr}, {"metrics-addr", c.MetricsAddr}} {
		if err := server.CheckAddr(a.addr); err != nil {
			bad(a.flag, "%v", err)
		}
	}
	if partitions < 1 || partitions > server.MaxPartitions {
		bad("partitions", "%d is not between 1 and %d", partitions, server.MaxPartitions)
	} else {
		c.Partitions = uint32(partitions)
	}
	for _, u := range []struct {
		flag, list string
		byAccount  bool
	}{
		{"ingestion-addr", c.IngestionAddr, false}, {"stages-addr", c.StagesAddr, true},
		{"health-addr", c.HealthAddr, true}, {"routing-addr", c.RoutingAddr, false},
	} {
		n := len(server.SplitList(u.list))
		switch {
		case n == 0:
			bad(u.flag, "empty")
		case u.byAccount && n > 1 && c.Partitions > 0 && n > int(c.Partitions):
			// Replicas split by account partition each own a partition.
			bad(u.flag, "%d replicas need at least as many -partitions, got %d", n, c.Partitions)
		}
	}
	if c.KeysFile == "" {
		bad("keys", "empty")
	}
	if c.MaxBody <= 0 {
		bad("max-body", "%d is not positive", c.MaxBody)
	}
	if !(c.Rate >= 0) { // also NaN
		bad("rate", "%v: want 0 (no limit) or more requests per second", c.Rate)
	}
	if c.Burst < 1 {
		bad("burst", "%d is less than 1", c.Burst)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "%v is not positive", c.ShutdownTimeout)
	}
	c.Admission.check(c.MaxBody, bad)
	if c.MemoryLimitMiB < 0 {
		bad("memory-limit-mib", "%d is negative", c.MemoryLimitMiB)
	}
	if getenv("GOMEMLIMIT") != "" {
		// The operator chose; the runtime has already applied it.
		c.MemoryLimitMiB = 0
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: %w", server.ErrConfig, err)
	}
	return c, nil
}
