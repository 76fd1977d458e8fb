package app

import (
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
	f := server.NewFlags("stages", &c.Server)
	f.Upstream(&c.IngestionAddr, "ingestion", true)
	f.BoolVar(&c.NoSync, "no-sync", false, "skip fsync; acknowledged state may be lost on a crash (benchmarks only)")
	return c, f.Parse(args, getenv)
}
