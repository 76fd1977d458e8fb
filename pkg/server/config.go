package server

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Defaults applied by RegisterFlags and New to zero fields.
const (
	DefaultDataDir         = "./data"
	DefaultPartitions      = 8
	DefaultMaxRecvBytes    = 4 << 20
	DefaultRequestTimeout  = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultGCPercent is every service's GC target. Each service's live
	// heap is small (bbolt's pages are mmapped, not heap) and every event
	// it handles allocates, so at Go's default of 100 the collector took
	// 10-14% of each consumer's CPU in the running suite, and about as much
	// of ingestion's, where 400 saved ~15% of CPU per event for ~200 MB
	// more heap under full load (services/ingestion/BENCHMARKS.md).
	DefaultGCPercent = 400
	// DefaultMemoryLimitMiB caps what the raised target may cost.
	DefaultMemoryLimitMiB = 512
	// DefaultMaxSubscribers and DefaultMaxSubscribersPerKey bound the
	// Subscribe streams of one process. A suite's consumers all present
	// the one service key and open one stream per partition each (a
	// service read by three consumers of 8 partitions serves 24), so the
	// per-key bound is what a runaway or hostile reader meets first.
	DefaultMaxSubscribers       = 512
	DefaultMaxSubscribersPerKey = 256
	// MaxPartitions bounds -partitions; partition ids are uint32 in the API
	// but every partition costs a goroutine per consumer.
	MaxPartitions = 4096
)

// Config is the process configuration shared by every service. Fill in Name
// (and any per-service defaults), then call RegisterFlags and flag.Parse.
type Config struct {
	// Name is the service name ("ingestion", "stages", ...). It names the
	// bbolt file DataDir/<Name>.db and picks the default ports.
	Name string
	// GRPCAddr is the gRPC listen address (-grpc-addr, CAIRN_GRPC_ADDR);
	// port 0 picks a free port, see Server.Addr.
	GRPCAddr string
	// MetricsAddr is the Prometheus /metrics listen address (-metrics-addr,
	// CAIRN_METRICS_ADDR); empty disables the listener.
	MetricsAddr string
	// DataDir holds the service's bbolt file and, by default, the key file
	// (-data, CAIRN_DATA).
	DataDir string
	// KeysFile is the API key file (-keys, CAIRN_KEYS); empty means
	// DataDir/keys.json.
	KeysFile string
	// ServiceKey is the RoleService token this process presents to its
	// upstream peers (-service-key, CAIRN_SERVICE_KEY). Prefer the
	// environment: flags show up in ps.
	ServiceKey string
	// Partitions is the number of log partitions, the same value for every
	// service (-partitions, CAIRN_PARTITIONS).
	Partitions uint32
	// Replica is this process's index among the replicas of its service
	// (-replica, CAIRN_REPLICA); "auto" takes it from the hostname suffix
	// of a StatefulSet pod, "name-N". It owns the partitions p with
	// p % Replicas == Replica (stream.Replica).
	Replica int
	// Replicas is the number of replicas of the service (-replicas,
	// CAIRN_REPLICAS, default 1), at most Partitions.
	Replicas int
	// ByWorkspace splits the service by workspace instead of by partition
	// (ingestion and routing, whose state is workspace-wide; set by the
	// service, not a flag): replica Replica owns the workspaces w with
	// stream.WorkspaceReplica(w, Replicas) == Replica and every partition.
	// Unary calls for another replica's workspace are refused with
	// FailedPrecondition naming the owner (see CheckWorkspace).
	ByWorkspace bool
	// MaxRecvBytes bounds one received gRPC message (-max-recv-bytes,
	// CAIRN_MAX_RECV_BYTES); larger ones fail with ResourceExhausted.
	MaxRecvBytes int
	// RequestTimeout is the deadline given to unary calls whose client set
	// none (-request-timeout, CAIRN_REQUEST_TIMEOUT).
	RequestTimeout time.Duration
	// DrainDelay is how long the server keeps serving after reporting
	// NOT_SERVING on shutdown, so that load balancers stop sending traffic
	// first (-drain-delay, CAIRN_DRAIN_DELAY).
	DrainDelay time.Duration
	// ShutdownTimeout bounds GracefulStop before connections are cut
	// (-shutdown-timeout, CAIRN_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// GCPercent is the garbage collector's target (as GOGC) that New sets
	// (-gc-percent, CAIRN_GC_PERCENT; RegisterFlags defaults it to
	// DefaultGCPercent). 0 leaves the runtime's, as does setting the GOGC
	// environment variable.
	GCPercent int
	// MemoryLimitMiB is the soft memory limit (as GOMEMLIMIT, in MiB) that
	// New sets (-memory-limit-mib, CAIRN_MEMORY_LIMIT_MIB, default
	// DefaultMemoryLimitMiB): with the raised GC target the heap may grow to
	// five times the live heap under load, and near the limit the runtime
	// collects more often instead. 0 sets none, and GOMEMLIMIT, when set,
	// wins.
	MemoryLimitMiB int64
	// MaxSubscribers and MaxSubscribersPerKey bound the Subscribe streams
	// served at once, overall and per API key (-max-subscribers,
	// -max-subscribers-per-key; defaults DefaultMaxSubscribers and
	// DefaultMaxSubscribersPerKey; 0: no bound). Past them a new stream is
	// refused at once with ResourceExhausted and a retry delay: the
	// consumers reconnect with backoff.
	MaxSubscribers, MaxSubscribersPerKey int64
	// OwnSubscribeAdmission says the service bounds its Subscribe streams
	// itself (ingestion does, at its tap, before a stream's first message
	// is read): the shared flags and bound are then left out.
	OwnSubscribeAdmission bool
	// Pprof serves net/http/pprof under /debug/pprof/ on the metrics
	// listener (-pprof, CAIRN_PPROF), so that the running suite can be
	// profiled where it is measured; off by default because a profile
	// costs CPU and shows internals.
	Pprof bool
	// Logger receives server logs; nil means slog.Default().
	Logger *slog.Logger
	// Clock paces the drain delay and shutdown timeout; nil means the real
	// clock. Tests use a manual clock.
	Clock clock.Clock
	// ServerOptions are added to the gRPC server's own (set by the service,
	// not a flag): ingestion's admission tap (pkg/admit), for one.
	ServerOptions []grpc.ServerOption

	// envErrs records environment values that did not parse, reported by
	// Validate because RegisterFlags cannot return an error.
	envErrs []error
}

// DefaultGRPCAddr returns the conventional local gRPC address of a service,
// or "" for unknown names.
func DefaultGRPCAddr(name string) string {
	switch name {
	case "ingestion":
		return "127.0.0.1:7101"
	case "stages":
		return "127.0.0.1:7102"
	case "health":
		return "127.0.0.1:7103"
	case "routing":
		return "127.0.0.1:7104"
	case "plays":
		return "127.0.0.1:7105"
	default:
		return ""
	}
}

// DefaultMetricsAddr returns the conventional local metrics address of a
// service, or "" for unknown names.
func DefaultMetricsAddr(name string) string {
	switch name {
	case "ingestion":
		return "127.0.0.1:9101"
	case "stages":
		return "127.0.0.1:9102"
	case "health":
		return "127.0.0.1:9103"
	case "routing":
		return "127.0.0.1:9104"
	case "gateway":
		return "127.0.0.1:9105"
	case "plays":
		return "127.0.0.1:9106"
	default:
		return ""
	}
}

// EnvName returns the environment variable that overrides flag name, e.g.
// "grpc-addr" -> "CAIRN_GRPC_ADDR".
func EnvName(flagName string) string {
	return "CAIRN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// RegisterFlags registers the configuration flags on fs. Each flag's default
// is, in order of precedence: the environment variable EnvName(flag), the
// value already in c, or the package default. Environment values that do not
// parse are reported by Validate.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.envErrs = nil
	str := func(p *string, name, def, usage string) {
		if *p == "" {
			*p = def
		}
		if v, ok := os.LookupEnv(EnvName(name)); ok {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" (env "+EnvName(name)+")")
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		if *p == 0 {
			*p = def
		}
		c.fromEnv(name, func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil {
				*p = d
			}
			return err
		})
		fs.DurationVar(p, name, *p, usage+" (env "+EnvName(name)+")")
	}

	str(&c.GRPCAddr, "grpc-addr", DefaultGRPCAddr(c.Name), "gRPC listen address")
	str(&c.MetricsAddr, "metrics-addr", DefaultMetricsAddr(c.Name), "Prometheus /metrics listen address; empty disables it")
	str(&c.DataDir, "data", DefaultDataDir, "data directory holding <service>.db")
	str(&c.KeysFile, "keys", "", "API key file (default <data>/keys.json)")

	if v, ok := os.LookupEnv(EnvName("service-key")); ok {
		c.ServiceKey = v
	}
	fs.Var(secret{&c.ServiceKey}, "service-key", "service API key presented to upstream peers (env "+EnvName("service-key")+", preferred)")

	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	setPartitions := func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("want an integer from 1 to %d", MaxPartitions)
		}
		c.Partitions = uint32(n)
		return nil
	}
	c.fromEnv("partitions", setPartitions)
	fs.Func("partitions", fmt.Sprintf("number of log partitions, the same for every service (default %d) (env %s)", c.Partitions, EnvName("partitions")), setPartitions)

	if c.Replicas == 0 {
		c.Replicas = 1
	}
	setReplica := func(v string) error {
		i, err := ParseReplica(v)
		if err != nil {
			return err
		}
		c.Replica = i
		return nil
	}
	c.fromEnv("replica", setReplica)
	fs.Func("replica", fmt.Sprintf("index of this replica, or auto for the hostname's StatefulSet ordinal (default %d) (env %s)", c.Replica, EnvName("replica")), setReplica)
	setReplicas := func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errors.New("want an integer from 1 to -partitions")
		}
		c.Replicas = n
		return nil
	}
	c.fromEnv("replicas", setReplicas)
	fs.Func("replicas", fmt.Sprintf("number of replicas of this service, each owning partitions p %% replicas == replica (default %d) (env %s)", c.Replicas, EnvName("replicas")), setReplicas)

	if c.MaxRecvBytes == 0 {
		c.MaxRecvBytes = DefaultMaxRecvBytes
	}
	c.fromEnv("max-recv-bytes", func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil {
			c.MaxRecvBytes = n
		}
		return err
	})
	fs.IntVar(&c.MaxRecvBytes, "max-recv-bytes", c.MaxRecvBytes, "largest gRPC message accepted (env "+EnvName("max-recv-bytes")+")")

	dur(&c.RequestTimeout, "request-timeout", DefaultRequestTimeout, "deadline for unary calls that set none")
	dur(&c.DrainDelay, "drain-delay", 0, "time to keep serving after reporting NOT_SERVING on shutdown")
	dur(&c.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "bound on graceful stop")
	if c.GCPercent == 0 {
		c.GCPercent = DefaultGCPercent
	}
	c.fromEnv("gc-percent", func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil {
			c.GCPercent = n
		}
		return err
	})
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "garbage collector target (as GOGC) unless the GOGC environment variable is set; 0: leave the runtime's (env "+EnvName("gc-percent")+")")
	if c.MemoryLimitMiB == 0 {
		c.MemoryLimitMiB = DefaultMemoryLimitMiB
	}
	c.fromEnv("memory-limit-mib", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			c.MemoryLimitMiB = n
		}
		return err
	})
	fs.Int64Var(&c.MemoryLimitMiB, "memory-limit-mib", c.MemoryLimitMiB, "soft memory limit in MiB (as GOMEMLIMIT) unless the GOMEMLIMIT environment variable is set; 0: none (env "+EnvName("memory-limit-mib")+")")
	if !c.OwnSubscribeAdmission {
		if c.MaxSubscribers == 0 {
			c.MaxSubscribers = DefaultMaxSubscribers
		}
		if c.MaxSubscribersPerKey == 0 {
			c.MaxSubscribersPerKey = DefaultMaxSubscribersPerKey
		}
		for _, b := range []struct {
			name string
			p    *int64
		}{{"max-subscribers", &c.MaxSubscribers}, {"max-subscribers-per-key", &c.MaxSubscribersPerKey}} {
			c.fromEnv(b.name, func(v string) error {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					*b.p = n
				}
				return err
			})
		}
		fs.Int64Var(&c.MaxSubscribers, "max-subscribers", c.MaxSubscribers, "Subscribe streams served at once before new ones get ResourceExhausted; 0: no bound (env "+EnvName("max-subscribers")+")")
		fs.Int64Var(&c.MaxSubscribersPerKey, "max-subscribers-per-key", c.MaxSubscribersPerKey, "Subscribe streams served at once for one API key; 0: no bound (env "+EnvName("max-subscribers-per-key")+")")
	}
	c.fromEnv("pprof", func(v string) error {
		b, err := strconv.ParseBool(v)
		if err == nil {
			c.Pprof = b
		}
		return err
	})
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve net/http/pprof under /debug/pprof/ on the metrics address (env "+EnvName("pprof")+")")
}

// fromEnv applies the environment value of flag name, if set, with set.
func (c *Config) fromEnv(name string, set func(string) error) {
	v, ok := os.LookupEnv(EnvName(name))
	if !ok {
		return
	}
	if err := set(v); err != nil {
		c.envErrs = append(c.envErrs, fmt.Errorf("-%s: environment %s=%q: %w", name, EnvName(name), v, err))
	}
}

// secret is a flag.Value that never prints its value (e.g. in -help).
type secret struct{ p *string }

func (s secret) String() string {
	if s.p == nil || *s.p == "" {
		return ""
	}
	return "(set)"
}

func (s secret) Set(v string) error { *s.p = v; return nil }

// withDefaults returns c with zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxRecvBytes == 0 {
		c.MaxRecvBytes = DefaultMaxRecvBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		// telemetry.Setup's logger already carries the service name; the
		// default one gets it here, so server logs always name the service
		// once.
		c.Logger = slog.Default().With("service", c.Name)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	return c
}

// Validate reports every invalid field, naming its flag. Zero fields that
// have a default (see the Default* constants) are valid: New applies the
// defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	errs := append([]error(nil), c.envErrs...)
	if c.Name == "" {
		errs = append(errs, errors.New("service name is empty"))
	}
	if err := CheckAddr(c.GRPCAddr); err != nil {
		errs = append(errs, fmt.Errorf("-grpc-addr: %w", err))
	}
	if c.MetricsAddr != "" {
		if err := CheckAddr(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("-metrics-addr: %w", err))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("-data: empty"))
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("-partitions: %d is not between 1 and %d", c.Partitions, MaxPartitions))
	}
	if c.Replicas < 1 || c.Replicas > int(c.Partitions) {
		errs = append(errs, fmt.Errorf("-replicas: %d is not between 1 and -partitions (%d): every replica must own a partition", c.Replicas, c.Partitions))
	}
	if c.Replica < 0 || c.Replica >= c.Replicas {
		errs = append(errs, fmt.Errorf("-replica: %d is not between 0 and -replicas - 1 (%d)", c.Replica, c.Replicas-1))
	}
	if c.MaxRecvBytes < 1024 || c.MaxRecvBytes > 256<<20 {
		errs = append(errs, fmt.Errorf("-max-recv-bytes: %d is not between 1 KiB and 256 MiB", c.MaxRecvBytes))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-request-timeout: %v is not positive", c.RequestTimeout))
	}
	if c.GCPercent < 0 {
		errs = append(errs, fmt.Errorf("-gc-percent: %d is negative", c.GCPercent))
	}
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, fmt.Errorf("-memory-limit-mib: %d is negative", c.MemoryLimitMiB))
	}
	if c.MaxSubscribers < 0 {
		errs = append(errs, fmt.Errorf("-max-subscribers: %d is negative", c.MaxSubscribers))
	}
	if c.MaxSubscribersPerKey < 0 {
		errs = append(errs, fmt.Errorf("-max-subscribers-per-key: %d is negative", c.MaxSubscribersPerKey))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("-drain-delay: %v is negative", c.DrainDelay))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-shutdown-timeout: %v is not positive", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// CheckAddr accepts a listen address: host:port with a numeric port (the
// host may be empty: every interface).
func CheckAddr(addr string) error {
	if addr == "" {
		return errors.New("empty")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return nil
}

// hostname is os.Hostname; tests replace it.
var hostname = os.Hostname

// ParseReplica parses a -replica value: a non-negative index, or "auto" for
// the ordinal a Kubernetes StatefulSet puts at the end of each pod's
// hostname ("stages-2" is replica 2).
func ParseReplica(v string) (int, error) {
	if v == "auto" {
		h, err := hostname()
		if err != nil {
			return 0, fmt.Errorf("auto: read hostname: %w", err)
		}
		i := strings.LastIndexByte(h, '-')
		n, err := strconv.Atoi(h[i+1:])
		if i < 0 || err != nil || n < 0 {
			return 0, fmt.Errorf("auto: hostname %q does not end in -<ordinal>", h)
		}
		return n, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New(`want a non-negative integer or "auto"`)
	}
	return n, nil
}

// Owns reports whether this replica owns partition p. stream.Replica
// already reads an unset Replicas as one replica. A replica of a service
// split by workspace owns every partition.
func (c Config) Owns(p uint32) bool {
	return c.ByWorkspace || stream.Replica(p, c.Replicas) == c.Replica
}

// OwnedPartitions lists the partitions this replica owns, in order; a
// single replica, or one of a service split by workspace, owns them all.
func (c Config) OwnedPartitions() []uint32 {
	c = c.withDefaults()
	if c.ByWorkspace {
		return stream.Owned(0, 1, c.Partitions)
	}
	return stream.Owned(c.Replica, c.Replicas, c.Partitions)
}

// OwnsWorkspace reports whether this replica owns workspace ws: always for
// a service split by partition or run as one replica.
func (c Config) OwnsWorkspace(ws string) bool {
	return !c.ByWorkspace || stream.WorkspaceReplica(ws, c.Replicas) == c.Replica
}

// CheckWorkspace returns nil when this replica owns ws, else a
// FailedPrecondition status naming the workspace and the index of the
// replica that owns it (also as an ErrorInfo detail, reason
// WORKSPACE_ELSEWHERE, metadata workspace, replica and replicas), so that a
// misrouted client learns where to go.
func (c Config) CheckWorkspace(ws string) error {
	if c.OwnsWorkspace(ws) {
		return nil
	}
	owner := stream.WorkspaceReplica(ws, c.Replicas)
	st := status.Newf(codes.FailedPrecondition,
		"workspace: %q belongs to %s replica %d of %d, not to this replica %d; send its calls to replica %d (stream.WorkspaceReplica)",
		ws, c.Name, owner, c.Replicas, c.Replica, owner)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: "WORKSPACE_ELSEWHERE", Domain: "cairn",
		Metadata: map[string]string{"workspace": ws, "replica": strconv.Itoa(owner), "replicas": strconv.Itoa(c.Replicas)},
	}); err == nil {
		st = d
	}
	return st.Err()
}

// DBPath is the service's bbolt file, DataDir/<Name>.db.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, c.Name+".db") }

// KeysPath is KeysFile, or DataDir/keys.json when empty.
func (c Config) KeysPath() string {
	if c.KeysFile != "" {
		return c.KeysFile
	}
	return filepath.Join(c.DataDir, "keys.json")
}
