package server

import (
	"errors"
	"fmt"
	"strings"
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

// SplitList splits a comma-separated flag value (an address list, one
// address per replica in replica order; CORS origins) and drops blanks
// around the entries.
func SplitList(list string) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// DialList dials every address of a comma-separated replica list with Dial
// and returns the connections in replica order; on error it closes those
// already made. A service's replica i owns partitions p with
// stream.Replica(p, len(conns)) == i.
func DialList(list string, serviceKey string) ([]*grpc.ClientConn, error) {
	addrs := SplitList(list)
	if len(addrs) == 0 {
		return nil, errors.New("dial: empty address list")
	}
	conns := make([]*grpc.ClientConn, 0, len(addrs))
	for _, a := range addrs {
		cc, err := Dial(a, serviceKey)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, err
		}
		conns = append(conns, cc)
	}
	return conns, nil
}
