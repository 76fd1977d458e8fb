package app_test

import (
	"context"
	"path/filepath"
	"testing"

	_ "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/methods/methodstest"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"

	"github.com/cairn-dev/cairn/services/stages/internal/app"
)

// TestTenants runs the tenant table (pkg/methods/methodstest) over every
// RPC of the stages service and every key role, against the real service
// (Run: pkg/server's interceptor chain, the handlers and the store) on
// loopback: a key bound to one workspace asking for another is refused
// with PermissionDenied, and a key of the right role for its own workspace
// gets past authorization.
func TestTenants(t *testing.T) {
	dir := t.TempDir()
	kr, err := auth.LoadKeyring(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := methodstest.CreateKeys(t, kr)
	addr := streamtest.FreeAddr(t)
	cfg, err := app.Parse([]string{"-grpc-addr=" + addr, "-data=" + dir, "-metrics-addr=", "-service-key=" + keys.ClusterWide, "-ingestion-addr=" + streamtest.FreeAddr(t)}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	methodstest.CheckTenants(t, streamtest.Dial(t, addr), methods.Stages, keys)
}
