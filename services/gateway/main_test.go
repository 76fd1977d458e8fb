package main

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
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunServesAndStops wires the real main path: keyring file, upstream
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
	cfg := config{
		httpAddr: freeAddr(t), metricsAddr: freeAddr(t),
		ingestionAddr: f.Addr, stagesAddr: f.Addr, healthAddr: f.Addr, routingAddr: f.Addr,
		keysFile: keysFile, maxBody: 1 << 20, rate: 100, burst: 100, shutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()

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
	base := "http://" + cfg.httpAddr
	tests := []struct {
		name       string
		url, key   string
		wantStatus int
		wantBody   string
	}{
		{"healthz", base + "/healthz", "", 200, `"ok"`},
		{"readyz", base + "/readyz", "", 200, `"ready"`},
		{"keyring key forwarded", base + "/v1/accounts/acme/journey", readKey, 200, `"onboarding"`},
		{"unknown key", base + "/v1/accounts/acme/journey", "nope", 401, "UNAUTHENTICATED"},
		{"metrics", "http://" + cfg.metricsAddr + "/metrics", "", 200, "cairn_http_requests_total"},
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

func TestApplyEnv(t *testing.T) {
	t.Setenv("CAIRN_HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("CAIRN_MAX_BODY", "12")
	var cfg config
	fs := newFlagSet(&cfg)
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"-max-body", "34"}); err != nil {
		t.Fatal(err)
	}
	if cfg.httpAddr != "127.0.0.1:9999" || cfg.maxBody != 34 {
		t.Errorf("config = %+v: want env for http-addr and the flag winning for max-body", cfg)
	}
	t.Setenv("CAIRN_RATE", "fast")
	if err := applyEnv(newFlagSet(&cfg)); err == nil || !strings.Contains(err.Error(), "CAIRN_RATE") {
		t.Errorf("bad env value: err = %v, want one naming CAIRN_RATE", err)
	}
}
