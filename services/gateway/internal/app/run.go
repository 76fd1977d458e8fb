package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/methods"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/gateway/internal/server"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Run serves the gateway until ctx ends, then shuts its listeners down
// gracefully within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config) error {
	shutdown, logger, err := telemetry.Setup(ctx, "gateway")
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() {
		if err := shutdown(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("flush traces", "error", err)
		}
	}()
	return serve(ctx, cfg, logger)
}

// serve is Run with its logger given: it loads the keyring, dials the
// upstreams, builds the handler and serves it and /metrics.
func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	keyring, err := auth.LoadKeyring(cfg.KeysFile)
	if err != nil {
		return fmt.Errorf("load keyring %s: %w", cfg.KeysFile, err)
	}
	keys := server.Keys{Authenticator: keyring}
	ups, conns, err := dialUpstreams(cfg, keys)
	defer func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	}()
	if err != nil {
		return err
	}
	if cfg.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimitMiB << 20)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adm := cfg.Admission.controllers(clock.Real{})
	for _, c := range adm.Controllers() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register admission metrics: %w", err)
		}
	}
	// Once a burst is over, the memory it took goes back to the OS.
	reclaimCtx, stopReclaim := context.WithCancel(ctx)
	reclaimed := make(chan struct{})
	go func() {
		defer close(reclaimed)
		_ = (&admit.Reclaimer{Controllers: adm.Controllers()}).Run(reclaimCtx)
	}()
	defer func() {
		stopReclaim()
		<-reclaimed
	}()
	h, err := server.New(ctx, server.Config{
		Upstreams:   ups,
		Auth:        keys,
		Limiter:     web.NewRateLimiter(cfg.Rate, cfg.Burst, clock.Real{}),
		Admission:   adm,
		CORSOrigins: cfg.CORSOrigins,
		MaxBody:     cfg.MaxBody,
		Registerer:  reg,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if cfg.Pprof {
		pkgserver.MountPprof(metricsMux)
	}
	return listenAndServe(ctx, logger, cfg.ShutdownTimeout, []listener{
		{cfg.HTTPAddr, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}},
		{cfg.MetricsAddr, &http.Server{Handler: metricsMux, ReadHeaderTimeout: 10 * time.Second}},
	})
}

// dialUpstreams connects to every replica of the four services
// (pkgserver.DialList, without a service key: the gateway forwards each
// caller's own key) and routes each service's calls across its replicas as
// its methods table says: a service split by workspace (ingestion,
// routing) gets each call at its workspace's replica, one split by account
// partition (stages, health) an account's calls at the account's owner. It
// returns the connections made, to be closed, even on error.
func dialUpstreams(cfg Config, keys web.Authenticator) (server.Upstreams, []*grpc.ClientConn, error) {
	var (
		ups server.Upstreams
		all []*grpc.ClientConn
	)
	for _, u := range []struct {
		flag  string
		list  string
		table methods.Table
		dst   *grpc.ClientConnInterface
	}{
		{"-ingestion-addr", cfg.IngestionAddr, methods.Ingestion, &ups.Ingestion},
		{"-stages-addr", cfg.StagesAddr, methods.Stages, &ups.Stages},
		{"-health-addr", cfg.HealthAddr, methods.Health, &ups.Health},
		{"-routing-addr", cfg.RoutingAddr, methods.Routing, &ups.Routing},
		{"-plays-addr", cfg.PlaysAddr, methods.Plays, &ups.Plays},
	} {
		if u.list == "" && u.dst == &ups.Plays {
			continue // no plays service
		}
		conns, err := pkgserver.DialList(u.list, "")
		if err != nil {
			return ups, all, fmt.Errorf("%s: %w", u.flag, err)
		}
		all = append(all, conns...)
		replicas := make([]grpc.ClientConnInterface, len(conns))
		for i, cc := range conns {
			replicas[i] = cc
		}
		if u.table.ByWorkspace {
			*u.dst, err = server.NewWorkspaceRouter(replicas, keys)
		} else {
			*u.dst, err = server.NewRouter(replicas, cfg.Partitions, keys)
		}
		if err != nil {
			return ups, all, fmt.Errorf("%s: %w", u.flag, err)
		}
	}
	return ups, all, nil
}

// listener is one HTTP server and its address.
type listener struct {
	addr string
	srv  *http.Server
}

// listenAndServe opens every listener, then serves them until ctx ends or
// one fails, and shuts them all down within timeout.
func listenAndServe(ctx context.Context, logger *slog.Logger, timeout time.Duration, ls []listener) error {
	lns := make([]net.Listener, 0, len(ls))
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, ln := range lns {
				_ = ln.Close()
			}
			return fmt.Errorf("listen %s: %w", l.addr, err)
		}
		logger.Info("listening", "addr", ln.Addr().String())
		lns = append(lns, ln)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, l := range ls {
		g.Go(func() error {
			if err := l.srv.Serve(lns[i]); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", l.addr, err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), timeout)
			defer cancel()
			return l.srv.Shutdown(sctx)
		})
	}
	return g.Wait()
}
