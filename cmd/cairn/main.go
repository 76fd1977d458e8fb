// Command cairn is Cairn's command line: `cairn run` starts the whole suite on
// localhost (what `make run` does), `cairn demo` writes the demo workspace,
// and the other commands talk gRPC to the services.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.OSEnv())
	stop()
	os.Exit(code)
}
