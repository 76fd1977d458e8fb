// Package telemetry sets up tracing and structured logging for a Cairn
// process: an OpenTelemetry TracerProvider (exporting over OTLP/gRPC only
// when OTEL_EXPORTER_OTLP_ENDPOINT is set), the W3C trace-context
// propagator, and a JSON slog logger that stamps each record with the
// trace_id and span_id found in its context.
//
// Metrics are not set up here: services register Prometheus collectors on
// the registry that pkg/server exposes on /metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// EnvEndpoint turns on OTLP export when set (standard OTel variable; the
// exporter also honours the other OTEL_EXPORTER_OTLP_* variables).
const EnvEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"

// EnvLogLevel sets the log level: debug, info (default), warn or error.
const EnvLogLevel = "CAIRN_LOG_LEVEL"

// Setup installs the global TracerProvider, propagator (which otelgrpc
// uses) and OTel error handler and returns a JSON logger on stderr. Without an OTLP endpoint the
// provider exports nothing but still creates spans, so logs carry trace ids.
// Call shutdown before exit to flush spans.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, logger *slog.Logger, err error) {
	return setup(ctx, service, os.Stderr, os.Getenv)
}

// setup is Setup with its environment injected, for tests.
func setup(ctx context.Context, service string, w io.Writer, getenv func(string) string) (func(context.Context) error, *slog.Logger, error) {
	if service == "" {
		return nil, nil, errors.New("telemetry setup: empty service name")
	}
	level, err := ParseLevel(getenv(EnvLogLevel))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry setup: %s: %w", EnvLogLevel, err)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(attribute.String("service.name", "cairn-"+service)))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry setup: build resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if getenv(EnvEndpoint) != "" {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry setup: create OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	logger := slog.New(NewHandler(w, level)).With("service", service)
	// Exporter failures (collector down) go to the JSON log, not stdlib log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry error", "error", err)
	}))
	shutdown := func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down tracer provider: %w", err)
		}
		return nil
	}
	return shutdown, logger, nil
}

// ParseLevel parses a log level name; "" is info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("unknown log level %q: want debug, info, warn or error", s)
	}
}

// NewHandler returns a JSON slog handler writing to w at level that adds
// trace_id and span_id when the record's context holds a valid span. (Inside
// a WithGroup the ids land in that group.)
func NewHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return traceHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
}

// traceHandler decorates records with the span context of their ctx.
type traceHandler struct{ slog.Handler }

// Handle adds trace_id/span_id, then delegates.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the decoration on derived handlers.
func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{Handler: h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the decoration on derived handlers.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{Handler: h.Handler.WithGroup(name)}
}
