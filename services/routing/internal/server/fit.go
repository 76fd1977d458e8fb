package server

import (
	"context"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
)

// GetAccountFit returns an account's lead fit: its status, what the PQL
// rules see, and each rule with its criteria met or missing.
func (s *Server) GetAccountFit(ctx context.Context, req *routingv1.GetAccountFitRequest) (*routingv1.GetAccountFitResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), true); err != nil {
		return nil, err
	}
	fit, err := s.app.GetAccountFit(ws, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetAccountFitResponse{Fit: fit}, nil
}
