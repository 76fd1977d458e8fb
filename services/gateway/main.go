// Command cairn-gateway serves Cairn's REST API (grpc-gateway over the four
// services), the Segment-compatible tracking API, the OpenAPI document and
// docs page, and the dashboard. Its configuration and wiring are in
// internal/app, its HTTP handlers in internal/server.
package main

import (
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/gateway/internal/app"
)

func main() { server.Main("gateway", app.Parse, app.Run) }
