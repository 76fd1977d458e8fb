// Command devserver runs the gateway against the in-process demo fakes, so
// the dashboard can be developed and browser-tested without the real suite:
//
//	go run ./services/gateway/internal/devserver -addr 127.0.0.1:8089
//
// It accepts the read key "dev-read" and prints the dashboard URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
	"github.com/cairn-dev/cairn/services/gateway/internal/server"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// devKey is the only key the dev server accepts.
const devKey = "dev-read"

type keys struct{}

func (keys) Authenticate(token string) (web.Key, error) {
	if token != devKey {
		return web.Key{}, errors.New("unknown key")
	}
	return web.Key{ID: "dev", Workspace: "demo", CanWrite: true}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "HTTP listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string) error {
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen gRPC: %w", err)
	}
	gs := grpc.NewServer()
	fakes.NewDemo(time.Now().UTC().Truncate(time.Hour)).Register(gs)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(gln) }()
	defer gs.Stop()
	cc, err := grpc.NewClient(gln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial fakes: %w", err)
	}
	defer cc.Close()
	h, err := server.New(ctx, server.Config{
		Upstreams: server.Upstreams{Ingestion: cc, Stages: cc, Health: cc, Routing: cc},
		Auth:      keys{},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen HTTP: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("dashboard: http://%s/#key=%s\n", ln.Addr(), devKey)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
