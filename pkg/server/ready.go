package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// ReadyInterval is how often a running server re-evaluates its readiness
// checks.
const ReadyInterval = time.Second

// readyCheck is one named readiness condition.
type readyCheck struct {
	name  string
	check func() error
}

// Ready adds a readiness check, e.g. that every upstream log has been
// reached and its head heard (stream.Consumers.Ready). While any check
// fails the server still serves, but reports NOT_SERVING on the gRPC health
// service and answers /readyz on the metrics address with 503 and the
// reasons, so that a supervisor or a load balancer can tell a process that
// is up from one that can answer truthfully. Call it before Run.
func (s *Server) Ready(name string, check func() error) {
	s.checks = append(s.checks, readyCheck{name: name, check: check})
}

// Storage registers what is wrong with writing the service's store
// (store.DB.Trouble): "" while writes succeed. A full disk does not make
// the service unready, since it still answers reads truthfully; /readyz
// says it in words, and the change is logged.
func (s *Server) Storage(trouble func() string) { s.storage = trouble }

// storageTrouble is the registered storage trouble, or "".
func (s *Server) storageTrouble() string {
	if s.storage == nil {
		return ""
	}
	return s.storage()
}

// NotReady returns why the server is not ready, or nil: every failing
// check, "name: reason", on one line.
func (s *Server) NotReady() error {
	errs := make([]error, 0, len(s.checks))
	for _, c := range s.checks {
		if err := c.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return stream.JoinReady(errs...)
}

// setServing reports status for the server and every registered service.
// After shutdown has begun the health server ignores it.
func (s *Server) setServing(status healthpb.HealthCheckResponse_ServingStatus) {
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, status)
	}
	s.Health.SetServingStatus("", status)
}

// watchReady re-evaluates the checks every ReadyInterval until ctx ends,
// reporting SERVING or NOT_SERVING and logging each change with its reason.
func (s *Server) watchReady(ctx context.Context) error {
	var last, lastStorage string
	first := true
	for {
		if st := s.storageTrouble(); st != lastStorage {
			if st != "" {
				s.Logger.Warn("storage", "trouble", st)
			} else {
				s.Logger.Info("storage writes succeed again")
			}
			lastStorage = st
		}
		err := s.NotReady()
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		if first || reason != last {
			if err != nil {
				s.setServing(healthpb.HealthCheckResponse_NOT_SERVING)
				s.Logger.Warn("not ready", "reason", reason)
			} else {
				s.setServing(healthpb.HealthCheckResponse_SERVING)
				if !first {
					s.Logger.Info("ready")
				}
			}
			first, last = false, reason
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.cfg.Clock.After(ReadyInterval):
		}
	}
}

// readyz answers 200 "ready" or 503 with the reasons, and says what is
// wrong with the store's writes, if anything ("ready; storage: disk full
// since ...").
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	storage := ""
	if st := s.storageTrouble(); st != "" {
		storage = "; storage: " + st
	}
	if err := s.NotReady(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v%s\n", err, storage)
		return
	}
	fmt.Fprintf(w, "ready%s\n", storage)
}
