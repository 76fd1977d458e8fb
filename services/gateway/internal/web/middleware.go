package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	traceKey
	routeKey
)

// Trace is the W3C trace context of one request.
type Trace struct {
	// TraceID is 32 lower-case hex digits.
	TraceID string
	// SpanID is the gateway's span, 16 lower-case hex digits.
	SpanID string
	// Flags is the two-digit trace-flags field.
	Flags string
}

func (t Trace) spanContext() (trace.SpanContext, bool) {
	tid, err := trace.TraceIDFromHex(t.TraceID)
	if err != nil {
		return trace.SpanContext{}, false
	}
	sid, err := trace.SpanIDFromHex(t.SpanID)
	if err != nil {
		return trace.SpanContext{}, false
	}
	var flags trace.TraceFlags
	if b, err := hex.DecodeString(t.Flags); err == nil && len(b) == 1 {
		flags = trace.TraceFlags(b[0])
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true})
	return sc, sc.IsValid()
}

// Traceparent formats t as a W3C traceparent header value.
func (t Trace) Traceparent() string { return "00-" + t.TraceID + "-" + t.SpanID + "-" + t.Flags }

// RequestID returns the request id stored by Identify, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// TraceFrom returns the trace stored by Identify.
func TraceFrom(ctx context.Context) (Trace, bool) {
	t, ok := ctx.Value(traceKey).(Trace)
	return t, ok
}

// Identify gives every request an id (the caller's X-Request-Id when it is
// sane, else a new one) and a W3C trace context (continuing the caller's
// traceparent when valid), and returns both in X-Request-Id, traceparent and
// X-Trace-Id response headers.
func Identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = randomHex(16)
		}
		t, ok := parseTraceparent(r.Header.Get("Traceparent"))
		if !ok {
			t = Trace{TraceID: randomHex(16), Flags: "01"}
		}
		t.SpanID = randomHex(8)
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("Traceparent", t.Traceparent())
		h.Set("X-Trace-Id", t.TraceID)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		ctx = context.WithValue(ctx, traceKey, t)
		// As the remote parent of outgoing calls, the gateway's span makes
		// otelgrpc's client spans join the trace named in X-Trace-Id.
		if sc, ok := t.spanContext(); ok {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// validRequestID accepts short printable ids so that a caller cannot inject
// header or log garbage through X-Request-Id.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func parseTraceparent(v string) (Trace, bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return Trace{}, false
	}
	for _, p := range parts[:4] {
		if !isLowerHex(p) {
			return Trace{}, false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return Trace{}, false
	}
	return Trace{TraceID: parts[1], Flags: parts[3]}, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b)
}

// CORS answers cross-origin requests for the configured origins ("*" allows
// any). Preflight requests are answered here and never reach the handlers.
type CORS struct {
	// Origins allowed to call the API; "*" allows any.
	Origins []string
}

// Allowed reports whether origin may call the API.
func (c CORS) Allowed(origin string) bool {
	for _, o := range c.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// Wrap returns next with CORS handling.
func (c CORS) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !c.Allowed(origin) {
			next.ServeHTTP(w, r)
			return
		}
		SetCORSHeaders(w, origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SetCORSHeaders allows origin to call the API with the headers the gateway reads
// and to see the headers it returns.
func SetCORSHeaders(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id, Traceparent")
	h.Set("Access-Control-Expose-Headers", "X-Request-Id, X-Trace-Id, Traceparent, Retry-After")
	h.Set("Access-Control-Max-Age", "600")
}

// LimitBody caps request bodies at max bytes; reading past it fails with
// *http.MaxBytesError, which WriteError answers with 413. A declared
// Content-Length above the limit is refused before reading.
func LimitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			WriteError(w, r, &http.MaxBytesError{Limit: max})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// route is filled in by the innermost handler that knows the route pattern,
// so that metrics use bounded labels instead of raw paths.
type route struct{ name string }

// SetRoute names the route of the current request for metrics.
func SetRoute(ctx context.Context, name string) {
	if r, ok := ctx.Value(routeKey).(*route); ok {
		r.name = name
	}
}

// Metrics records cairn_http_requests_total{route,code} and
// cairn_http_request_duration_seconds{route}.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the gateway's HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_requests_total",
			Help: "HTTP requests served by the gateway, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Wrap returns next instrumented with the metrics.
func (m *Metrics) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rt := &route{name: "unmatched"}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey, rt)))
		m.requests.WithLabelValues(rt.name, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(rt.name).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
