// Command cairn-health is the health-scoring service: it keeps an
// explainable, configurable health score per account from the ingestion and
// stages logs, emits risk, expansion and renewal-window signals on its own
// log, and backtests models against renewals and churn.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-dev/cairn/pkg/server"
)

func main() {
	cfg := config{Server: server.Config{Name: "health"}}
	fs := flag.NewFlagSet("cairn-health", flag.ExitOnError)
	cfg.Server.RegisterFlags(fs)
	str := func(p *string, name, def, usage string) {
		if v, ok := os.LookupEnv(server.EnvName(name)); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+server.EnvName(name)+")")
	}
	str(&cfg.IngestionAddr, "ingestion-addr", "127.0.0.1:7101", "ingestion gRPC address, or its replicas' addresses comma-separated in replica order (required)")
	str(&cfg.StagesAddr, "stages-addr", "127.0.0.1:7102", "stages gRPC address, or its replicas' addresses comma-separated in replica order; empty runs without stage data")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		slog.Error("health stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
