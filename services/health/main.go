// Command cairn-health is the health-scoring service: it keeps an
// explainable, configurable health score per account from the ingestion and
// stages logs, emits risk, expansion and renewal-window signals on its own
// log, and backtests models against renewals and churn.
package main

import (
	"github.com/cairn-dev/cairn/pkg/server"

	"github.com/cairn-dev/cairn/services/health/internal/app"
)

func main() { server.Main("health", app.Parse, app.Run) }
