// Package streamtest helps tests stand up what a consumer reads: a local
// log served as the ingestion service's Subscribe stream, on a free
// loopback address.
package streamtest

import (
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
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
