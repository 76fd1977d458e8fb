package methodstest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

// CheckService runs the tenant table over every RPC of tbl against a
// service's real process entry (its app.Parse and app.Run: pkg/server's
// interceptor chain, the handlers and the store) on loopback, with a fresh
// keyring in a temporary data directory. flags are the service's own
// (upstream addresses, usually empty).
func CheckService[C any](t *testing.T, tbl methods.Table, parse func([]string, func(string) string) (C, error), run func(context.Context, C) error, flags ...string) {
	t.Helper()
	dir := t.TempDir()
	kr, err := auth.LoadKeyring(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := CreateKeys(t, kr)
	addr := streamtest.FreeAddr(t)
	args := append([]string{"-grpc-addr=" + addr, "-data=" + dir, "-metrics-addr=", "-service-key=" + keys.ClusterWide}, flags...)
	cfg, err := parse(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	CheckTenants(t, streamtest.Dial(t, addr), tbl, keys)
}
