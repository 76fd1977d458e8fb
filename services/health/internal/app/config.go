package app

import (
	"errors"
	"flag"
	"fmt"

	"github.com/cairn-dev/cairn/pkg/server"
)

// Config is the process configuration.
type Config struct {
	// Server holds the flags shared by every service.
	Server server.Config
	// IngestionAddr is the ingestion service whose log is consumed, or its
	// replicas' addresses comma-separated in replica order (-ingestion-addr,
	// CAIRN_INGESTION_ADDR).
	IngestionAddr string
	// StagesAddr is the stages service whose log is consumed, or its
	// replicas' addresses comma-separated in replica order; empty skips it
	// (-stages-addr, CAIRN_STAGES_ADDR).
	StagesAddr string
}

// Parse reads the configuration from the command line and the environment
// (CAIRN_<FLAG>; the command line wins) and validates it. Errors name the
// flag and wrap server.ErrConfig.
func Parse(args []string, getenv func(string) string) (Config, error) {
	cfg := Config{Server: server.Config{Name: "health"}}
	fs := flag.NewFlagSet("cairn-health", flag.ContinueOnError)
	cfg.Server.RegisterFlags(fs)
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, def, usage+" (env "+server.EnvName(name)+")")
	}
	str(&cfg.IngestionAddr, "ingestion-addr", "127.0.0.1:7101", "ingestion gRPC address, or its replicas' addresses comma-separated in replica order (required)")
	str(&cfg.StagesAddr, "stages-addr", "127.0.0.1:7102", "stages gRPC address, or its replicas' addresses comma-separated in replica order; empty runs without stage data")
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", server.ErrConfig, err)
	}
	return cfg, nil
}

// Validate reports every invalid field, naming its flag.
func (c Config) Validate() error {
	var errs []error
	if err := c.Server.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.IngestionAddr == "" {
		errs = append(errs, errors.New("-ingestion-addr is required"))
	}
	return errors.Join(errs...)
}
