package server

import (
	"context"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
)

// GetStatus reports how far the service is behind the logs it consumes
// (pkg/server.Status).
func (s *Server) GetStatus(ctx context.Context, req *routingv1.GetStatusRequest) (*routingv1.GetStatusResponse, error) {
	b, err := pkgserver.Status(ctx, req.GetWorkspace(), s.lag)
	if err != nil {
		return nil, err
	}
	return &routingv1.GetStatusResponse{Backlog: b}, nil
}
