package server

import (
	"context"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
)

// GetStatus reports how far the service is behind the logs it consumes
// (pkg/server.Status).
func (s *Server) GetStatus(ctx context.Context, req *stagesv1.GetStatusRequest) (*stagesv1.GetStatusResponse, error) {
	b, err := pkgserver.Status(ctx, req.GetWorkspace(), s.lag)
	if err != nil {
		return nil, err
	}
	return &stagesv1.GetStatusResponse{Backlog: b}, nil
}
