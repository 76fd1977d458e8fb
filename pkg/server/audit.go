package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// audit counts, and logs at debug, every call made with a cluster-wide
// service key (auth.Principal.ClusterWide): such a key acts on every
// workspace, so its use is visible per key and method
// (cairn_auth_cluster_wide_calls_total) even though it is the suite's own
// peers that normally hold it. It runs after authorization, so refused
// calls are not counted.
type audit struct {
	calls *prometheus.CounterVec
}

func newAudit() *audit {
	return &audit{calls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_auth_cluster_wide_calls_total",
		Help: "gRPC calls authorized with a cluster-wide service key, by key id and full method.",
	}, []string{"key_id", "method"})}
}

func (s *Server) auditCall(ctx context.Context, method string) {
	p, ok := auth.FromContext(ctx)
	if !ok || !p.ClusterWide() {
		return
	}
	s.audit.calls.WithLabelValues(p.KeyID, method).Inc()
	s.Logger.DebugContext(ctx, "call with a cluster-wide service key", "key_id", p.KeyID, "method", method)
}

func (s *Server) auditUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.auditCall(ctx, info.FullMethod)
	return handler(ctx, req)
}

func (s *Server) auditStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	s.auditCall(ss.Context(), info.FullMethod)
	return handler(srv, ss)
}
