// Command cairn-stages runs the stage-evaluation service: it consumes the
// ingestion log, keeps each account's journey state, and serves the
// cairn.stages.v1 API and the stages log.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-dev/cairn/pkg/server"
)

func main() {
	cfg := config{Server: server.Config{Name: "stages"}}
	fs := flag.NewFlagSet("cairn-stages", flag.ExitOnError)
	cfg.registerFlags(fs)
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cairn-stages:", err)
		os.Exit(1)
	}
}
