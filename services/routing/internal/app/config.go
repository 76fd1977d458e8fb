package app

import (
	"fmt"

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
//
// Owner load, round-robin positions and capacity are workspace-wide state,
// so routing scales by workspace, not by partition: replica k of
// -replicas K keeps the workspaces with stream.WorkspaceReplica == k,
// refuses calls for the others (pkg/server) and skips their records while
// reading every upstream partition (upstreams.go).
func Parse(args []string, getenv func(string) string) (Config, error) {
	cfg := Config{Server: server.Config{Name: "routing", ByWorkspace: true}}
	f := server.NewFlags("routing", &cfg.Server)
	f.Upstream(&cfg.IngestionAddr, "ingestion", false)
	f.Upstream(&cfg.StagesAddr, "stages", false)
	f.Upstream(&cfg.HealthAddr, "health", false)
	f.IntVar(&cfg.TimerBatch, "timer-batch", DefaultTimerBatch, "SLA timers fired per transaction")
	f.Check(func() error {
		if cfg.TimerBatch < 1 {
			return fmt.Errorf("-timer-batch: %d is less than 1", cfg.TimerBatch)
		}
		return nil
	})
	if testHooks != nil {
		f.Check(func() (err error) {
			cfg.hooks, err = testHooks(getenv)
			return err
		})
	}
	return cfg, f.Parse(args, getenv)
}
