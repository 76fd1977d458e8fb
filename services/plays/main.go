// Command cairn-plays is the plays service: it turns stage changes, health
// signals, handoffs and SLA clocks into tasks for owners and signed
// webhooks and Slack messages, delivered durably.
package main

import (
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/plays/internal/app"
)

func main() { server.Main("plays", app.Parse, app.Run) }
