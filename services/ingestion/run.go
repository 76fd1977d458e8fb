package main

import (
	"context"
	"errors"
	"fmt"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/telemetry"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
)

// run serves until ctx ends: open the keys and the store, register the
// service, report SERVING (pkg/server), and on ctx end stop gracefully.
func run(ctx context.Context, cfg config) (err error) {
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
	st, err := store.Open(db, store.Options{
		Partitions:    cfg.Server.Partitions,
		Retention:     cfg.Retention,
		DedupWindow:   cfg.DedupWindow,
		Clock:         clock.Real{},
		NoGroupCommit: cfg.NoGroupCommit,
	})
	if err != nil {
		return err
	}
	srv, err := pkgserver.New(cfg.Server, server.Policy(), keys)
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}
	svc, err := server.New(st, server.Config{
		Limits:           cfg.Limits,
		MaxInflightBytes: cfg.MaxInflightBytes,
		Registerer:       srv.Registry,
		Logger:           srv.Logger,
	})
	if err != nil {
		return errors.Join(err, srv.Close())
	}
	ingestionv1.RegisterIngestionServiceServer(srv.GRPC, svc)
	return srv.Run(ctx,
		st.Sweep,
		func(ctx context.Context) error { return st.Log().RunRetention(ctx, cfg.RetentionInterval) },
	)
}
