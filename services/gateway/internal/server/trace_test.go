package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
)

// TestOtelClientSpansJoinTheRequestTrace checks that, with otelgrpc on the
// upstream connections (as main wires it), the services see a child span of
// the trace the gateway reports in X-Trace-Id rather than a new trace.
func TestOtelClientSpansJoinTheRequestTrace(t *testing.T) {
	f := fakes.Start(t)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cc, err := grpc.NewClient(f.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.TraceContext{}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := New(ctx, Config{Upstreams: Upstreams{Ingestion: cc, Stages: cc, Health: cc, Routing: cc}, Auth: fakes.Keys{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/accounts/acme/journey", nil)
	req.Header.Set("Authorization", "Bearer "+fakes.ReadKey)
	req.Header.Set("Traceparent", parent)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	md, _ := f.Stages.Calls.Last()
	tp0 := md.Get("traceparent")
	if len(tp0) != 1 {
		t.Fatalf("upstream traceparent = %q, want one value", tp0)
	}
	gatewaySpan := strings.Split(resp.Header.Get("Traceparent"), "-")[2]
	parts := strings.Split(tp0[0], "-")
	if parts[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || resp.Header.Get("X-Trace-Id") != parts[1] {
		t.Errorf("upstream trace %s, X-Trace-Id %s: want the caller's trace", parts[1], resp.Header.Get("X-Trace-Id"))
	}
	if parts[2] == gatewaySpan || parts[2] == "00f067aa0ba902b7" {
		t.Errorf("upstream parent span %s: want otelgrpc's client span, a child of the gateway's %s", parts[2], gatewaySpan)
	}
}
