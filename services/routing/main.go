// Command cairn-routing is the handoff-routing service: it assigns MQLs,
// PQLs, SQLs and post-sale handoffs to owners by rules and holds them to
// business-hours SLAs whose timers survive restarts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/pkg/server"
)

// fakeNowEnv is TEST-ONLY: an RFC 3339 instant that freezes the service's
// clock, so subprocess tests can make SLA timers due at will.
const fakeNowEnv = "CAIRN_FAKE_NOW"

// killAfterEnv is TEST-ONLY fault injection: after this many SLA timers have
// fired (committed), the process sends itself SIGKILL, so the crash test can
// die between a timer's due time and its firing deterministically.
const killAfterEnv = "CAIRN_TEST_KILL_AFTER_TIMERS"

func main() {
	cfg := config{Server: server.Config{Name: "routing"}}
	fs := flag.NewFlagSet("cairn-routing", flag.ExitOnError)
	cfg.Server.RegisterFlags(fs)
	str := func(p *string, name, def, usage string) {
		if v, ok := os.LookupEnv(server.EnvName(name)); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+server.EnvName(name)+"); empty disables the consumer")
	}
	str(&cfg.IngestionAddr, "ingestion-addr", "127.0.0.1:7101", "ingestion gRPC address")
	str(&cfg.StagesAddr, "stages-addr", "127.0.0.1:7102", "stages gRPC address, or its replicas' addresses comma-separated in replica order")
	str(&cfg.HealthAddr, "health-addr", "127.0.0.1:7103", "health gRPC address, or its replicas' addresses comma-separated in replica order")
	fs.IntVar(&cfg.TimerBatch, "timer-batch", 10000, "SLA timers fired per transaction (env "+server.EnvName("timer-batch")+")")
	if v, ok := os.LookupEnv(server.EnvName("timer-batch")); ok {
		if n, err := strconv.Atoi(v); err == nil {
			cfg.TimerBatch = n
		}
	}
	_ = fs.Parse(os.Args[1:])
	if v := os.Getenv(fakeNowEnv); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", fakeNowEnv, err)
			os.Exit(2)
		}
		cfg.FakeNow = t
	}
	if v := os.Getenv(killAfterEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", killAfterEnv, err)
			os.Exit(2)
		}
		cfg.KillAfterTimers = n
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		slog.Error("routing stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
