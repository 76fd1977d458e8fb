// Command cairn-stages runs the stage-evaluation service: it consumes the
// ingestion log, keeps each account's journey state, and serves the
// cairn.stages.v1 API and the stages log.
package main

import (
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/stages/internal/app"
)

func main() { server.Main("stages", app.Parse, app.Run) }
