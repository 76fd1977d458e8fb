package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/pkg/clock"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
)

// consumers returns the upstream consumers to run.
func consumers(cfg config, svc *rserver.Service, logger *slog.Logger, reg prometheus.Registerer, clk clock.Clock) []func(context.Context) error {
	return nil
}
