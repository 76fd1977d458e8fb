package app

import (
	"errors"
	"flag"
	"fmt"

	"github.com/cairn-dev/cairn/pkg/server"
)

// Config is the service configuration.
type Config struct {
	// Server holds the flags every service shares.
	Server server.Config
	// IngestionAddr is the ingestion service's gRPC address, or its
	// replicas' comma-separated in replica order (-ingestion-addr,
	// CAIRN_INGESTION_ADDR).
	IngestionAddr string
	// NoSync skips fsync (-no-sync, CAIRN_NO_SYNC); only for benchmarks.
	NoSync bool
}

// Parse reads the configuration from the command line and the environment
// (CAIRN_<FLAG>, the command line wins). Every bad value is reported,
// naming its flag, as a server.ErrConfig.
func Parse(args []string, getenv func(string) string) (Config, error) {
	c := Config{Server: server.Config{Name: "stages"}}
	fs := flag.NewFlagSet("cairn-stages", flag.ContinueOnError)
	c.Server.RegisterFlags(fs)
	fs.StringVar(&c.IngestionAddr, "ingestion-addr", "127.0.0.1:7101", "ingestion gRPC address, or its replicas' addresses comma-separated in replica order (env "+server.EnvName("ingestion-addr")+")")
	fs.BoolVar(&c.NoSync, "no-sync", false, "skip fsync; acknowledged state may be lost on a crash (benchmarks only) (env "+server.EnvName("no-sync")+")")
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", server.ErrConfig, err)
	}
	return c, nil
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	if err := c.Server.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.IngestionAddr == "" {
		errs = append(errs, errors.New("-ingestion-addr: empty"))
	}
	return errors.Join(errs...)
}
