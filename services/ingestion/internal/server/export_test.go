package server

import "github.com/prometheus/client_golang/prometheus"

// Hooks for the tests of package server_test, which run the server over
// the real app (internal/app imports this package, so they cannot live in
// it).

// IngestBatch is the Ingest handler after authentication.
var IngestBatch = (*Server).ingest

// RejectReason is rejectReason.
var RejectReason = rejectReason

// Metrics returns the server's collectors.
func (s *Server) Metrics() (events, rejects *prometheus.CounterVec, batch prometheus.Histogram) {
	return s.m.events, s.m.rejects, s.m.batch
}
