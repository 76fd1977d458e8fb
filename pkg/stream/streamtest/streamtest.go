// Package streamtest helps tests stand up what a consumer reads and talk to
// service processes on loopback: a local log served as the ingestion
// service's Subscribe stream, free addresses, plaintext connections that
// wait for a process to serve, and bearer contexts.
package streamtest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Ingestion serves Log as the ingestion service's Subscribe stream, with
// every record decoded as an ingestion LogRecord; its other methods are
// unimplemented.
type Ingestion struct {
	ingestionv1.UnimplementedIngestionServiceServer
	Log *stream.Log
}

// Subscribe streams the log from the requested offset, as ingestion does.
func (f *Ingestion) Subscribe(req *ingestionv1.SubscribeRequest, ss grpc.ServerStreamingServer[ingestionv1.SubscribeResponse]) error {
	err := f.Log.Serve(ss.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []stream.Record, head uint64) error {
		resp := &ingestionv1.SubscribeResponse{HeadOffset: head}
		for _, r := range recs {
			lr := &ingestionv1.LogRecord{}
			if err := proto.Unmarshal(r.Data, lr); err != nil {
				return err
			}
			lr.Offset, lr.Partition = r.Offset, r.Partition
			resp.Records = append(resp.Records, lr)
		}
		return ss.Send(resp)
	})
	if ss.Context().Err() != nil {
		return nil
	}
	return apierr.Status(slog.New(slog.DiscardHandler), "Subscribe", err)
}

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Dial connects to a test server on loopback over plaintext; the connection
// closes when the test ends.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// WaitServing polls the gRPC health service behind conn until it answers
// SERVING, or fails the test after 30 s: it waits for a separate process
// to start (or restart), not for a deadline of the code under test.
func WaitServing(t testing.TB, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	for {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("not serving within 30s: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Bearer is a context whose outgoing calls carry token as the API key.
func Bearer(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}
