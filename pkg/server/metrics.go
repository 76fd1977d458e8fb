package server

import (
	"context"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// rpcMetrics counts calls by method and code and times unary calls.
// Streaming calls are counted but not timed: Subscribe streams live for hours.
type rpcMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newRPCMetrics() *rpcMetrics {
	return &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_grpc_requests_total",
			Help: "gRPC calls handled, by full method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_grpc_request_duration_seconds",
			Help:    "Latency of unary gRPC calls, by full method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9), // 0.5 ms .. ~33 s
		}, []string{"method"}),
	}
}

func (m *rpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

func (m *rpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}

// fileSizeCollector reports the size of the service's bbolt file at scrape
// time, so that alerts can fire before the volume fills. It reports nothing
// while the file does not exist (e.g. the gateway, which has no store).
type fileSizeCollector struct {
	path string
	desc *prometheus.Desc
}

func newFileSizeCollector(service, path string) *fileSizeCollector {
	return &fileSizeCollector{
		path: path,
		desc: prometheus.NewDesc("cairn_bbolt_file_bytes",
			"Size of the service's bbolt file on disk.",
			nil, prometheus.Labels{"service": service}),
	}
}

// Describe implements prometheus.Collector.
func (c *fileSizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *fileSizeCollector) Collect(ch chan<- prometheus.Metric) {
	fi, err := os.Stat(c.path)
	if err != nil {
		return
	}
	m, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, float64(fi.Size()))
	if err != nil {
		m = prometheus.NewInvalidMetric(c.desc, err)
	}
	ch <- m
}
