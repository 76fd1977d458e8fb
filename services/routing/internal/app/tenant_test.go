package app_test

import (
	"testing"

	_ "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/methods/methodstest"

	"github.com/cairn-dev/cairn/services/routing/internal/app"
)

// TestTenants runs the tenant table (pkg/methods/methodstest) over every
// RPC of the routing service and every key role, against the real service
// (Run: pkg/server's interceptor chain, the handlers and the store) on
// loopback: a key bound to one workspace asking for another is refused
// with PermissionDenied, and a key of the right role for its own workspace
// gets past authorization.
func TestTenants(t *testing.T) {
	methodstest.CheckService(t, methods.Routing, app.Parse, app.Run, "-ingestion-addr=", "-stages-addr=", "-health-addr=")
}
