package server

import (
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// MaxClientRecvBytes bounds one message received by Dial's clients; it is
// larger than the server default so that Subscribe batches always fit.
const MaxClientRecvBytes = 16 << 20

// Dial connects to a Cairn service at addr over plaintext (loopback or the
// pod network), with tracing and, when serviceKey is not empty, the key as a
// bearer token. The connection is lazy: no I/O happens until the first call.
func Dial(addr string, serviceKey string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(addr, DialOptions(serviceKey)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// DialOptions are the options Dial uses, for callers that dial differently
// (e.g. bufconn in tests).
func DialOptions(serviceKey string) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxClientRecvBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if serviceKey != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.Bearer(serviceKey)))
	}
	return opts
}
