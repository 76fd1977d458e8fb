package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/testport"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunServesAndStops wires the real process: keyring file, upstream
// dials, HTTP and metrics listeners, and graceful shutdown.
func TestRunServesAndStops(t *testing.T) {
	f := fakes.Start(t)
	keysFile := filepath.Join(t.TempDir(), "keys.json")
	kr, err := auth.LoadKeyring(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	readKey, err := kr.Create("ws1", auth.RoleRead)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		HTTPAddr: testport.Addr(t), MetricsAddr: testport.Addr(t),
		IngestionAddr: f.Addr, StagesAddr: f.Addr, HealthAddr: f.Addr, RoutingAddr: f.Addr,
		KeysFile: keysFile, MaxBody: 1 << 20, Rate: 100, Burst: 100, ShutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url, key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		var resp *http.Response
		// The listeners open asynchronously; retry connection errors briefly.
		for range 100 {
			if resp, err = client.Do(req); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := "http://" + cfg.HTTPAddr
	tests := []struct {
		name       string
		url, key   string
		wantStatus int
		wantBody   string
	}{
		{"healthz", base + "/healthz", "", 200, `"ok"`},
		{"readyz", base + "/readyz", "", 200, `"ready"`},
		{"keyring key forwarded", base + "/v1/accounts/acme/journey", readKey, 200, `"onboarding"`},
		{"unknown key", base + "/v1/accounts/acme/journey", "nope", 401, `"code":16`},
		{"metrics", "http://" + cfg.MetricsAddr + "/metrics", "", 200, "cairn_http_requests_total"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(tc.url, tc.key)
			if code != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s = %d %.200s; want %d containing %q", tc.url, code, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancel", err)
	}
	client.CloseIdleConnections()
}

// TestRunFailsCleanly checks that wiring errors are returned, naming what
// failed, with nothing left running.
func TestRunFailsCleanly(t *testing.T) {
	f := fakes.Start(t)
	keysFile := filepath.Join(t.TempDir(), "keys.json")
	if _, err := auth.LoadKeyring(keysFile); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	good := Config{
		HTTPAddr: testport.Addr(t), MetricsAddr: testport.Addr(t),
		IngestionAddr: f.Addr, StagesAddr: f.Addr, HealthAddr: f.Addr, RoutingAddr: f.Addr,
		KeysFile: keysFile, MaxBody: 1 << 20, Rate: 100, Burst: 100, ShutdownTimeout: 5 * time.Second, Partitions: 8,
	}
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"unreadable keyring":            {func(c *Config) { c.KeysFile = t.TempDir() }, "load keyring"},
		"metrics address in use":        {func(c *Config) { c.MetricsAddr = busy.Addr().String() }, "listen " + busy.Addr().String()},
		"more replicas than partitions": {func(c *Config) { c.StagesAddr, c.Partitions = f.Addr+","+f.Addr+","+f.Addr, 2 }, "-stages-addr: router: 3 replicas"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			err := serve(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
