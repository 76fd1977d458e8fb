package methodstest_test

import (
	"testing"

	_ "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	_ "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	_ "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	_ "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	_ "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/methods/methodstest"
)

// TestTenantsAuthLayer runs the tenant table over every method of every
// service table, plays included, against the authorization layer alone
// (Upstream: pkg/auth's interceptor with each table's Policy, then
// auth.Workspace). The services run the same table against their real
// handlers (tenant_test.go in each service's app package); the gateway
// runs it over its REST routes in front of Upstream.
func TestTenantsAuthLayer(t *testing.T) {
	keys, tokens := methodstest.StaticKeys()
	conn := methodstest.Upstream(t, keys)
	for _, tbl := range methods.Tables() {
		t.Run(tbl.Service, func(t *testing.T) { methodstest.CheckTenants(t, conn, tbl, tokens) })
	}
}
