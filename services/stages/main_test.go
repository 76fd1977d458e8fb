package main

import (
	"log/slog"
	"net"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeIngestion serves a local log as the ingestion Subscribe stream.
type fakeIngestion struct {
	ingestionv1.UnimplementedIngestionServiceServer
	log *stream.Log
}

func (f *fakeIngestion) Subscribe(req *ingestionv1.SubscribeRequest, ss grpc.ServerStreamingServer[ingestionv1.SubscribeResponse]) error {
	err := f.log.Serve(ss.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []stream.Record, head uint64) error {
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
