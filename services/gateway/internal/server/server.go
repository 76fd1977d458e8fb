// Package server assembles the gateway's HTTP handler: the grpc-gateway REST
// facade over the four services, the Segment-compatible tracking API, the
// OpenAPI document and docs page, health endpoints and the dashboard, behind
// request ids, CORS, body limits, per-key rate limits and metrics.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/dashboard"
	"github.com/cairn-dev/cairn/services/gateway/internal/tracking"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Upstreams are the client connections to the four services.
type Upstreams struct {
	// Ingestion is the IngestionService connection.
	Ingestion grpc.ClientConnInterface
	// Stages is the StagesService connection.
	Stages grpc.ClientConnInterface
	// Health is the HealthService connection.
	Health grpc.ClientConnInterface
	// Routing is the RoutingService connection.
	Routing grpc.ClientConnInterface
	// Plays is the PlaysService connection; nil when the deployment runs
	// no plays service (its REST paths then answer 404).
	Plays grpc.ClientConnInterface
}

// Config configures the handler.
type Config struct {
	// Upstreams to forward to; all four are required.
	Upstreams Upstreams
	// Auth checks API keys for rate limiting and tracking write keys; the
	// services still authorize every call themselves.
	Auth web.Authenticator
	// Limiter applies per-key rate limits; nil means unlimited.
	Limiter *web.RateLimiter
	// Admission bounds the requests handled at once, per key and overall;
	// nil means unbounded (admission.go).
	Admission *Admission
	// CORSOrigins may call the REST API from browsers; "*" allows any.
	CORSOrigins []string
	// MaxBody caps request bodies in bytes (413 beyond); 0 means 1 MiB.
	MaxBody int64
	// Registerer receives the HTTP metrics.
	Registerer prometheus.Registerer
	// ReadyTimeout bounds each upstream health check of /readyz; 0 means 2s.
	ReadyTimeout time.Duration
	// Logger receives one line per 5xx answer, with the request id and the
	// error the client does not see.
	Logger *slog.Logger
}

// New returns the gateway's HTTP handler.
func New(ctx context.Context, cfg Config) (http.Handler, error) {
	u := cfg.Upstreams
	if u.Ingestion == nil || u.Stages == nil || u.Health == nil || u.Routing == nil {
		return nil, fmt.Errorf("new gateway: all four upstream connections are required")
	}
	if cfg.Auth == nil {
		return nil, fmt.Errorf("new gateway: an authenticator is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	metrics, err := web.NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new gateway: register metrics: %w", err)
	}
	rest, err := newREST(ctx, u)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	ingest := ingestionv1.NewIngestionServiceClient(u.Ingestion)
	tr := &tracking.Handler{Ingestion: ingest, Auth: cfg.Auth, Limiter: cfg.Limiter, Coalescer: &tracking.Coalescer{Client: ingest}}
	if cfg.Admission != nil {
		tr.Admission = cfg.Admission.Writes
	}
	tr.Register(mux)
	for _, p := range tracking.Paths() {
		mux.HandleFunc("OPTIONS /v1/"+p, tracking.Preflight)
	}
	mux.Handle("/v1/", keyed(cfg.Auth, cfg.Limiter, cfg.Admission, rest))
	// The dashboard's joined account list and portfolio (dashboard.Report),
	// built from the services' list RPCs with the caller's key.
	mux.Handle("GET /v1/dashboard/accounts", keyed(cfg.Auth, cfg.Limiter, cfg.Admission,
		dashboard.Accounts(dashboard.Clients{Stages: u.Stages, Health: u.Health, Routing: u.Routing, Plays: u.Plays}, time.Now)))
	mux.Handle("GET /v1/dashboard/health-trend", keyed(cfg.Auth, cfg.Limiter, cfg.Admission,
		dashboard.HealthTrend(dashboard.Clients{Stages: u.Stages, Health: u.Health, Routing: u.Routing}, time.Now)))
	// The council KPIs (docs/kpis.md) over a period and segment.
	mux.Handle("GET /v1/dashboard/kpis", keyed(cfg.Auth, cfg.Limiter, cfg.Admission,
		dashboard.KPIs(dashboard.Clients{Stages: u.Stages, Health: u.Health, Routing: u.Routing, Plays: u.Plays}, time.Now)))
	// How far stages, health and routing are behind their upstream logs
	// (their GetStatus), which the dashboard polls to say that its numbers
	// are still moving.
	mux.Handle("GET /v1/dashboard/status", keyed(cfg.Auth, cfg.Limiter, cfg.Admission,
		dashboard.Status(dashboard.Clients{Stages: u.Stages, Health: u.Health, Routing: u.Routing, Plays: u.Plays})))
	doc, err := OpenAPI()
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "/openapi.json")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "/healthz")
		web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", readiness(u, cfg.ReadyTimeout))
	mux.Handle("/", dashboard.Handler())

	var h http.Handler = mux
	h = web.LimitBody(cfg.MaxBody, h)
	h = web.CORS{Origins: cfg.CORSOrigins}.Wrap(h)
	h = web.RequireUTF8(h)
	h = web.WithLogger(cfg.Logger, h)
	h = web.Identify(h)
	h = metrics.Wrap(h)
	return h, nil
}

// setQueryParser installs web.QueryParser, grpc-gateway's one query parser.
var setQueryParser sync.Once

// routingError is the error for a request no REST route takes.
func routingError(r *http.Request, code int) error {
	switch code {
	case http.StatusMethodNotAllowed:
		return &runtime.HTTPStatusError{HTTPStatus: code, Err: status.Errorf(codes.Unimplemented, "method %s is not allowed on %s", r.Method, printablePath(r))}
	case http.StatusNotFound:
		return status.Errorf(codes.NotFound, "no such endpoint: %s %s (see /openapi.json)", r.Method, printablePath(r))
	}
	return &runtime.HTTPStatusError{HTTPStatus: code, Err: status.Error(codes.InvalidArgument, http.StatusText(code))}
}

// printablePath is the request path as a message may show it: escaped,
// and cut short.
func printablePath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if len(p) > 200 {
		p = p[:200] + "..."
	}
	return p
}

func newREST(ctx context.Context, u Upstreams) (*runtime.ServeMux, error) {
	u = u.utf8Checked()
	setQueryParser.Do(func() {
		// grpc-gateway keeps the parser in a package variable, whatever the
		// mux: set it once, before any mux serves.
		runtime.SetQueryParameterParser(&web.QueryParser{})(nil)
	})
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, web.FieldNamingJSON{Marshaler: web.NewJSON()}),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			web.WriteError(w, r, err)
		}),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			web.WriteError(w, r, routingError(r, code))
		}),
		runtime.WithMetadata(func(ctx context.Context, r *http.Request) metadata.MD {
			md := metadata.MD{}
			if id := web.RequestID(r.Context()); id != "" {
				md.Set("x-request-id", id)
			}
			if t, ok := web.TraceFrom(r.Context()); ok {
				md.Set("traceparent", t.Traceparent())
			}
			return md
		}),
		runtime.WithMiddlewares(func(next runtime.HandlerFunc) runtime.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request, p map[string]string) {
				if pat, ok := runtime.HTTPPattern(r.Context()); ok {
					web.SetRoute(r.Context(), r.Method+" "+strings.ReplaceAll(pat.String(), "=*}", "}"))
				}
				if err := web.CheckPathParams(p); err != nil {
					web.WriteError(w, r, err)
					return
				}
				next(w, r, p)
			}
		}),
	)
	for name, reg := range map[string]func() error{
		"ingestion": func() error {
			return ingestionv1.RegisterIngestionServiceHandlerClient(ctx, mux, ingestionv1.NewIngestionServiceClient(u.Ingestion))
		},
		"stages": func() error {
			return stagesv1.RegisterStagesServiceHandlerClient(ctx, mux, stagesv1.NewStagesServiceClient(u.Stages))
		},
		"health": func() error {
			return healthv1.RegisterHealthServiceHandlerClient(ctx, mux, healthv1.NewHealthServiceClient(u.Health))
		},
		"routing": func() error {
			return routingv1.RegisterRoutingServiceHandlerClient(ctx, mux, routingv1.NewRoutingServiceClient(u.Routing))
		},
		"plays": func() error {
			if u.Plays == nil {
				return nil
			}
			return playsv1.RegisterPlaysServiceHandlerClient(ctx, mux, playsv1.NewPlaysServiceClient(u.Plays))
		},
	} {
		if err := reg(); err != nil {
			return nil, fmt.Errorf("register %s REST handlers: %w", name, err)
		}
	}
	return mux, nil
}

// keyed checks the Bearer key before forwarding, so that bad keys are refused
// without an upstream round trip and rate limits and admission are kept per
// key. The services authorize the forwarded key again (role, workspace).
func keyed(a web.Authenticator, l *web.RateLimiter, adm *Admission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "unmatched /v1")
		tok, ok := web.BearerToken(r.Header.Get("Authorization"))
		if !ok {
			web.WriteStatus(w, r, codes.Unauthenticated, "missing API key: send Authorization: Bearer <key>")
			return
		}
		key, err := a.Authenticate(tok)
		if err != nil {
			web.WriteStatus(w, r, codes.Unauthenticated, "API key not recognized")
			return
		}
		if ok, wait := l.Allow(key.ID); !ok {
			web.WriteError(w, r, web.RateLimited(wait))
			return
		}
		ticket, err := adm.rest(r, key.ID)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		defer ticket.Release()
		next.ServeHTTP(w, r)
	})
}

// readiness reports ready when every upstream answers its gRPC health check
// with SERVING.
func readiness(u Upstreams, timeout time.Duration) http.Handler {
	conns := map[string]grpc.ClientConnInterface{
		"ingestion": u.Ingestion, "stages": u.Stages, "health": u.Health, "routing": u.Routing,
	}
	if u.Plays != nil {
		conns["plays"] = u.Plays
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "/readyz")
		var (
			mu     sync.Mutex
			wg     sync.WaitGroup
			states = make(map[string]string, len(conns))
			ready  = true
		)
		for name, cc := range conns {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), timeout)
				defer cancel()
				resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
				state := resp.GetStatus().String()
				if err != nil {
					state = "UNREACHABLE"
				}
				mu.Lock()
				defer mu.Unlock()
				states[name] = state
				if state != healthpb.HealthCheckResponse_SERVING.String() {
					ready = false
				}
			})
		}
		wg.Wait()
		code, s := http.StatusOK, "ready"
		if !ready {
			code, s = http.StatusServiceUnavailable, "not ready"
		}
		web.WriteJSON(w, code, map[string]any{"status": s, "upstreams": states})
	})
}
