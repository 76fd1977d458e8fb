// Command cairn-ingestion runs the ingestion service: it validates,
// deduplicates and durably logs events, and serves the log to the stages,
// health and routing services. The configuration (flags and CAIRN_*
// environment variables) and the wiring are in internal/app.
package main

import (
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/app"
)

func main() { server.Main("ingestion", app.Parse, app.Run) }
