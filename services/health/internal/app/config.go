package app

import (
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
	f := server.NewFlags("health", &cfg.Server)
	f.Upstream(&cfg.IngestionAddr, "ingestion", true)
	f.Upstream(&cfg.StagesAddr, "stages", false)
	return cfg, f.Parse(args, getenv)
}
