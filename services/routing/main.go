// Command cairn-routing is the handoff-routing service: it assigns MQLs,
// PQLs, SQLs and post-sale handoffs to owners by rules and holds them to
// business-hours SLAs whose timers survive restarts.
package main

import (
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/routing/internal/app"
)

func main() { server.Main("routing", app.Parse, app.Run) }
