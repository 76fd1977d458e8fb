// Command cairn-gateway serves Cairn's REST API (grpc-gateway over the four
// services), the Segment-compatible tracking API, the OpenAPI document and
// docs page, and the dashboard.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/gateway/internal/server"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// config is the gateway's configuration, from flags or CAIRN_* variables.
type config struct {
	// httpAddr serves the API, tracking endpoints and dashboard.
	httpAddr string
	// metricsAddr serves /metrics.
	metricsAddr string
	// ingestionAddr, stagesAddr, healthAddr and routingAddr are the upstream
	// gRPC services; stagesAddr and healthAddr may list a service's replicas
	// comma-separated in replica order.
	ingestionAddr, stagesAddr, healthAddr, routingAddr string
	// partitions is the suite's -partitions, needed to find an account's
	// replica.
	partitions uint
	// keysFile is the shared keyring, used to check keys before forwarding.
	keysFile string
	// corsOrigins is a comma-separated list of origins allowed to call the REST API ("*" for any).
	corsOrigins string
	// maxBody caps request bodies in bytes.
	maxBody int64
	// rate and burst bound requests per second per API key; rate 0 disables limiting.
	rate  float64
	burst int
	// shutdownTimeout bounds graceful shutdown.
	shutdownTimeout time.Duration
}

func main() {
	var cfg config
	fs := newFlagSet(&cfg)
	if err := applyEnv(fs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2) // the flag package has printed the problem and usage.
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdown, logger, err := telemetry.Setup(ctx, "gateway")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = run(ctx, cfg, logger)
	if serr := shutdown(context.WithoutCancel(ctx)); serr != nil {
		logger.Warn("flush traces", "error", serr)
	}
	if err != nil {
		logger.Error("gateway stopped", "error", err)
		os.Exit(1)
	}
}

// newFlagSet defines the gateway's flags over cfg.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn-gateway", flag.ContinueOnError)
	fs.StringVar(&cfg.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "127.0.0.1:9105", "Prometheus /metrics listen address")
	fs.StringVar(&cfg.ingestionAddr, "ingestion-addr", "127.0.0.1:7101", "ingestion gRPC address, or its replicas' addresses comma-separated in replica order (split by workspace)")
	fs.StringVar(&cfg.stagesAddr, "stages-addr", "127.0.0.1:7102", "stages gRPC address, or its replicas' addresses comma-separated in replica order")
	fs.StringVar(&cfg.healthAddr, "health-addr", "127.0.0.1:7103", "health gRPC address, or its replicas' addresses comma-separated in replica order")
	fs.UintVar(&cfg.partitions, "partitions", 8, "log partitions, the services' -partitions (routes accounts to replicas)")
	fs.StringVar(&cfg.routingAddr, "routing-addr", "127.0.0.1:7104", "routing gRPC address, or its replicas' addresses comma-separated in replica order (split by workspace)")
	fs.StringVar(&cfg.keysFile, "keys", "./data/keys.json", "keyring file shared with the services")
	fs.StringVar(&cfg.corsOrigins, "cors-origins", "", `comma-separated origins allowed to call the REST API ("*" for any)`)
	fs.Int64Var(&cfg.maxBody, "max-body", 1<<20, "maximum request body in bytes")
	fs.Float64Var(&cfg.rate, "rate", 1000, "requests per second allowed per API key (0 disables)")
	fs.IntVar(&cfg.burst, "burst", 2000, "burst of requests allowed per API key")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "graceful shutdown limit")
	return fs
}

// applyEnv sets each flag from CAIRN_<FLAG_UPPER_SNAKE> when that variable is
// set, before the command line is parsed so that flags still win.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "CAIRN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}

func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	keys, err := auth.LoadKeyring(cfg.keysFile)
	if err != nil {
		return fmt.Errorf("load keyring %s: %w", cfg.keysFile, err)
	}
	var ups server.Upstreams
	for _, u := range []struct {
		name, addrs string
		dst         *grpc.ClientConnInterface
	}{
		{"ingestion", cfg.ingestionAddr, &ups.Ingestion}, {"stages", cfg.stagesAddr, &ups.Stages},
		{"health", cfg.healthAddr, &ups.Health}, {"routing", cfg.routingAddr, &ups.Routing},
	} {
		addrs := pkgserver.SplitList(u.addrs)
		if len(addrs) == 0 {
			return fmt.Errorf("-%s-addr: empty", u.name)
		}
		conns := make([]grpc.ClientConnInterface, 0, len(addrs))
		for _, addr := range addrs {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithStatsHandler(otelgrpc.NewClientHandler()))
			if err != nil {
				return fmt.Errorf("dial %s: %w", addr, err)
			}
			defer cc.Close()
			conns = append(conns, cc)
		}
		// Several replicas: ingestion and routing are split by workspace,
		// so a call goes to its workspace's replica; stages and health by
		// partition, so an account's calls go to its owner.
		var cc grpc.ClientConnInterface
		if u.name == "ingestion" || u.name == "routing" {
			cc, err = server.NewWorkspaceRouter(conns, server.Keys{Authenticator: keys})
		} else {
			cc, err = server.NewRouter(conns, uint32(min(cfg.partitions, 1<<20)), server.Keys{Authenticator: keys})
		}
		if err != nil {
			return fmt.Errorf("-%s-addr: %w", u.name, err)
		}
		*u.dst = cc
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := server.New(ctx, server.Config{
		Upstreams:   ups,
		Auth:        server.Keys{Authenticator: keys},
		Limiter:     web.NewRateLimiter(cfg.rate, cfg.burst, clock.Real{}),
		CORSOrigins: pkgserver.SplitList(cfg.corsOrigins),
		MaxBody:     cfg.maxBody,
		Registerer:  reg,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	servers := map[string]*http.Server{
		cfg.httpAddr: {Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)},
		cfg.metricsAddr: {Handler: metricsMux, ReadHeaderTimeout: 10 * time.Second},
	}
	g, gctx := errgroup.WithContext(ctx)
	for addr, srv := range servers {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		logger.Info("listening", "addr", ln.Addr().String())
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", addr, err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.shutdownTimeout)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return g.Wait()
}
