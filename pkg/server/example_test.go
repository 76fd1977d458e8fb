package server_test

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/telemetry"
)

// A service's main: flags and environment -> config -> run(ctx).
func Example() {
	cfg := server.Config{Name: "stages"} // default ports 7102 / 9102
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, logger, err := telemetry.Setup(ctx, cfg.Name)
	if err != nil {
		log.Fatal(err)
	}
	defer shutdown(context.WithoutCancel(ctx))
	cfg.Logger = logger

	keys, err := auth.LoadKeyring(cfg.KeysPath())
	if err != nil {
		log.Fatal(err)
	}
	policy := auth.Policy{"/cairn.stages.v1.StagesService/GetFunnel": auth.RoleRead}
	srv, err := server.New(cfg, policy, keys)
	if err != nil {
		log.Fatal(err)
	}
	// stagesv1.RegisterStagesServiceServer(srv.GRPC, impl)
	consume := func(ctx context.Context) error { <-ctx.Done(); return nil }
	if err := srv.Run(ctx, consume); err != nil {
		logger.Error("stopped", "error", err)
	}
}
