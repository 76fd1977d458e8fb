package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		err  bool
	}{
		{in: "", want: slog.LevelInfo},
		{in: "INFO", want: slog.LevelInfo},
		{in: "debug", want: slog.LevelDebug},
		{in: "warning", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "loud", err: true},
	}
	for _, tc := range tests {
		t.Run("level="+tc.in, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if (err != nil) != tc.err || (!tc.err && got != tc.want) {
				t.Fatalf("ParseLevel(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

// TestSetupLogsTraceIDs checks that, without an OTLP endpoint, spans still get
// ids and the logger stamps them on records logged with the span's context.
func TestSetupLogsTraceIDs(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantDebug bool
		wantErr   string
	}{
		{name: "defaults", env: map[string]string{}},
		{name: "debug level", env: map[string]string{EnvLogLevel: "debug"}, wantDebug: true},
		{name: "bad level", env: map[string]string{EnvLogLevel: "loud"}, wantErr: EnvLogLevel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			shutdown, logger, err := setup(t.Context(), "ingestion", &buf, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, span := otel.Tracer("test").Start(t.Context(), "op")
			logger.InfoContext(ctx, "hello", "k", "v")
			logger.DebugContext(ctx, "detail")
			span.End()

			sctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}

			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if tc.wantDebug != (len(lines) == 2) {
				t.Fatalf("got %d lines, want debug=%v:\n%s", len(lines), tc.wantDebug, buf.String())
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatalf("log line is not JSON: %v", err)
			}
			if rec["trace_id"] != span.SpanContext().TraceID().String() || rec["span_id"] != span.SpanContext().SpanID().String() {
				t.Fatalf("record %v lacks the span's ids", rec)
			}
			if rec["service"] != "ingestion" || rec["k"] != "v" {
				t.Fatalf("record %v lacks attributes", rec)
			}
		})
	}
}

func TestHandlerWithoutSpan(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(NewHandler(&buf, slog.LevelInfo)).With("a", 1).WithGroup("g")
	logger.InfoContext(t.Context(), "no span", "b", 2)
	if strings.Contains(buf.String(), "trace_id") {
		t.Fatalf("record without a span has a trace id: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"g":{"b":2}`) {
		t.Fatalf("group lost: %s", buf.String())
	}
}

// TestSetupWithEndpoint checks that an OTLP exporter is built when the
// endpoint is set; it connects lazily, so an unreachable endpoint is fine as
// long as no span is exported.
func TestSetupWithEndpoint(t *testing.T) {
	env := map[string]string{EnvEndpoint: "http://127.0.0.1:1"}
	shutdown, logger, err := setup(t.Context(), "routing", io.Discard, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		t.Fatal("nil logger")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestSetupNeedsService(t *testing.T) {
	if _, _, err := setup(t.Context(), "", io.Discard, func(string) string { return "" }); err == nil {
		t.Fatal("setup with an empty service name succeeded")
	}
}
