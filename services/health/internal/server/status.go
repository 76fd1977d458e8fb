package server

import (
	"context"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
)

// GetStatus reports how far the service is behind the logs it consumes
// (pkg/server.Status).
func (s *Server) GetStatus(ctx context.Context, req *healthv1.GetStatusRequest) (*healthv1.GetStatusResponse, error) {
	b, err := pkgserver.Status(ctx, req.GetWorkspace(), s.lag)
	if err != nil {
		return nil, err
	}
	return &healthv1.GetStatusResponse{Backlog: b}, nil
}
