package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// TestEnsureKeysServiceKeyIsClusterWide: `cairn run` gives its processes a
// cluster-wide service key (they read each other's logs across
// workspaces), named so; a second run reuses the keys of run.json.
func TestEnsureKeysServiceKeyIsClusterWide(t *testing.T) {
	data := t.TempDir()
	keysPath := filepath.Join(data, "keys.json")
	info, err := ensureKeys(data, keysPath)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := auth.LoadKeyring(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kr.Authenticate(info.ServiceKey)
	if err != nil || !p.ClusterWide() || !strings.HasPrefix(p.KeyID, auth.ClusterWideIDPrefix) {
		t.Fatalf("service key = %+v, %v; want a cluster-wide key named %s...", p, err, auth.ClusterWideIDPrefix)
	}
	if err := writeRunInfo(data, info); err != nil {
		t.Fatal(err)
	}
	again, err := ensureKeys(data, keysPath)
	if err != nil || again.ServiceKey != info.ServiceKey {
		t.Fatalf("second run: service key %q, %v; want the first run's", again.ServiceKey, err)
	}
}
