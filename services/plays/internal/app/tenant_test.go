package app_test

import (
	"testing"

	_ "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/methods/methodstest"

	"github.com/cairn-dev/cairn/services/plays/internal/app"
)

// TestTenants runs the tenant table (pkg/methods/methodstest) over every
// RPC of the plays service and every key role, against the real service
// (Run: pkg/server's interceptor chain, the handlers and the store) on
// loopback: a key bound to one workspace asking for another is refused
// with PermissionDenied, and a key of the right role for its own workspace
// gets past authorization.
func TestTenants(t *testing.T) {
	methodstest.CheckService(t, methods.Plays, app.Parse, app.Run, "-stages-addr=", "-health-addr=", "-routing-addr=")
}
