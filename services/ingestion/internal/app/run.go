package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream/jetlog"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// Run serves until ctx ends: open the keys and the store, register the
// service, run the index, sweep and retention loops, report SERVING
// (pkg/server), and on ctx end stop gracefully.
func Run(ctx context.Context, cfg Config) (err error) {
	shutdown, logger, err := telemetry.Setup(ctx, "ingestion")
	if err != nil {
		return fmt.Errorf("set up telemetry: %w", err)
	}
	defer func() { err = errors.Join(err, shutdown(context.Background())) }()
	cfg.Server.Logger = logger

	keys, err := auth.LoadKeyring(cfg.Server.KeysPath())
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	db, err := pkgstore.Open(cfg.Server.DBPath(), pkgstore.Options{SchemaVersion: store.SchemaVersion})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	var replicated *jetlog.Log
	if cfg.LogBackend == BackendJetStream {
		nc, err := connectNATS(cfg)
		if err != nil {
			return err
		}
		defer nc.Close()
		replicated, err = jetlog.Open(ctx, nc, jetlog.Options{
			Name:       streamName(cfg),
			Partitions: cfg.Server.Partitions,
			Replicas:   cfg.NATS.Replicas,
			MaxAge:     cfg.Retention,
			MaxBytes:   cfg.NATS.MaxBytes,
			Timeout:    cfg.NATS.Timeout,
			Logger:     logger,
		})
		if err != nil {
			return fmt.Errorf("-log-backend jetstream: %w", err)
		}
	}
	opts := Options{
		Partitions:             cfg.Server.Partitions,
		Retention:              cfg.Retention,
		DedupWindow:            cfg.DedupWindow,
		Clock:                  clock.Real{},
		NoGroupCommit:          cfg.NoGroupCommit,
		IndexInterval:          cfg.IndexInterval,
		ServeLinger:            cfg.ServeLinger,
		MaxInflightBytes:       cfg.MaxInflightBytes,
		MaxInflightBytesPerKey: cfg.MaxInflightBytesPerKey,
		AdmitWait:              cfg.Admission.Wait,
		AdmitTarget:            cfg.Admission.Target,
		LagBudget:              cfg.LagBudget,
		Logger:                 logger,
	}
	if replicated != nil {
		opts.Log = replicated
	}
	a, err := New(db, opts)
	if err != nil {
		return err
	}
	// Calls are admitted before their messages are read, per key and
	// overall; batches are admitted by their bytes in the handler.
	calls := newCalls(cfg.Admission, clock.Real{})
	cfg.Server.ServerOptions = append(cfg.Server.ServerOptions, calls.tap(keys).ServerOption())
	srv, err := pkgserver.New(cfg.Server, server.Policy(), keys)
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}
	for _, c := range append(calls.all(), a.Batches()) {
		if err := srv.Registry.Register(c); err != nil {
			return errors.Join(fmt.Errorf("register admission metrics: %w", err), srv.Close())
		}
	}
	// /readyz and the log say when writes fail (a full disk).
	srv.Storage(db.Trouble)
	if err := srv.Registry.Register(db.Collector("ingestion")); err != nil {
		return errors.Join(fmt.Errorf("register store metrics: %w", err), srv.Close())
	}
	if replicated != nil {
		for _, c := range replicated.Collectors() {
			if err := srv.Registry.Register(c); err != nil {
				return errors.Join(fmt.Errorf("register log metrics: %w", err), srv.Close())
			}
		}
	}
	for _, c := range lagMetrics(a, cfg.LagBudget) {
		if err := srv.Registry.Register(c); err != nil {
			return errors.Join(fmt.Errorf("register lag metrics: %w", err), srv.Close())
		}
	}
	svc, err := server.New(a, server.Config{
		Limits:     cfg.Limits,
		Registerer: srv.Registry,
		Logger:     srv.Logger,
		// Unary calls are checked by pkg/server; IngestStream's batches
		// each name their workspace and are checked one by one.
		Workspace: srv.Config().CheckWorkspace,
	})
	if err != nil {
		return errors.Join(err, srv.Close())
	}
	ingestionv1.RegisterIngestionServiceServer(srv.GRPC, svc)
	// Once a burst of batches is over, the heap it grew goes back to the
	// OS instead of staying resident until the next forced collection.
	reclaim := &admit.Reclaimer{Controllers: []*admit.Controller{a.Batches()}}
	background := []func(context.Context) error{
		a.Sweep,
		a.Index,
		func(ctx context.Context) error { return a.Retention(ctx, cfg.RetentionInterval) },
		reclaim.Run,
		a.Replicate,
	}
	if cfg.PprofAddr != "" {
		background = append(background, func(ctx context.Context) error { return servePprof(ctx, cfg.PprofAddr) })
	}
	return srv.Run(ctx, background...)
}

// connectNATS connects to the servers of -nats-url, reconnecting without
// limit: while none answers, acknowledgements wait (and time out as
// Unavailable) rather than the process exiting.
func connectNATS(cfg Config) (*nats.Conn, error) {
	nc, err := nats.Connect(cfg.NATS.URLs,
		nats.Name(fmt.Sprintf("cairn-ingestion-%d", cfg.Server.Replica)),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false),
		nats.Timeout(cfg.NATS.Timeout),
	)
	if err != nil {
		return nil, fmt.Errorf("-nats-url %q: connect: %w", cfg.NATS.URLs, err)
	}
	return nc, nil
}

// streamName names ingestion replica k's event log on JetStream: each
// replica writes every partition with its own offsets, so each has its own
// streams (cairn-ingestion-<k>-events-p<NNNNN>).
func streamName(cfg Config) string {
	return fmt.Sprintf("cairn-ingestion-%d-events", cfg.Server.Replica)
}

// servePprof serves the runtime profiles on addr until ctx ends.
func servePprof(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	pkgserver.MountPprof(mux)
	hs := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve pprof on %s: %w", addr, err)
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutCtx)
		<-errc
		return nil
	}
}
