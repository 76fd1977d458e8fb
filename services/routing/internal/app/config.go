package app

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/cairn-dev/cairn/pkg/server"
)

// DefaultTimerBatch is the default of -timer-batch.
const DefaultTimerBatch = 10000

// Config is the routing process's configuration, from flags or CAIRN_*
// variables (server.ParseFlags: the flag wins).
type Config struct {
	// Server holds the flags shared by every service.
	Server server.Config
	// IngestionAddr, StagesAddr and HealthAddr are the upstream logs
	// (-ingestion-addr, -stages-addr, -health-addr), each its replicas'
	// addresses comma-separated in replica order; empty disables the
	// consumer.
	IngestionAddr, StagesAddr, HealthAddr string
	// TimerBatch is how many SLA timers fire per transaction
	// (-timer-batch); zero means DefaultTimerBatch.
	TimerBatch int

	// hooks are test-only (hooks.go); nil in production builds.
	hooks *hooks
}

// Parse reads the command line and the environment (CAIRN_<FLAG>) into a
// Config. Every bad value is a configuration error (server.ErrConfig)
// naming its flag or variable.
func Parse(args []string, getenv func(string) string) (Config, error) {
	cfg := Config{Server: server.Config{Name: "routing"}}
	fs := flag.NewFlagSet("cairn-routing", flag.ContinueOnError)
	cfg.Server.RegisterFlags(fs)
	upstream := func(p *string, name, def, usage string) {
		// As for the shared flags (server.Config.RegisterFlags), a variable
		// set to the empty string counts: it disables the consumer.
		if v, ok := os.LookupEnv(server.EnvName(name)); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+"; empty disables the consumer")
	}
	upstream(&cfg.IngestionAddr, "ingestion-addr", server.DefaultGRPCAddr("ingestion"), "ingestion gRPC address, or its replicas' addresses comma-separated in replica order")
	upstream(&cfg.StagesAddr, "stages-addr", server.DefaultGRPCAddr("stages"), "stages gRPC address, or its replicas' addresses comma-separated in replica order")
	upstream(&cfg.HealthAddr, "health-addr", server.DefaultGRPCAddr("health"), "health gRPC address, or its replicas' addresses comma-separated in replica order")
	fs.IntVar(&cfg.TimerBatch, "timer-batch", DefaultTimerBatch, "SLA timers fired per transaction")
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return cfg, err
	}
	var errs []error
	if cfg.TimerBatch < 1 {
		errs = append(errs, fmt.Errorf("-timer-batch: %d is less than 1", cfg.TimerBatch))
	}
	if err := cfg.validate(); err != nil {
		errs = append(errs, err)
	}
	if testHooks != nil {
		h, err := testHooks(getenv)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.hooks = h
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("%w: %w", server.ErrConfig, err)
	}
	return cfg, nil
}

// validate checks the shared flags as routing runs them: split by
// workspace. Owner load, round-robin positions and capacity are
// workspace-wide state, so routing scales by workspace, not by partition:
// replica k of -replicas K keeps the workspaces with
// stream.WorkspaceReplica == k, refuses calls for the others (pkg/server)
// and skips their records while reading every upstream partition
// (upstreams.go).
func (c *Config) validate() error {
	c.Server.ByWorkspace = true
	return c.Server.Validate()
}
