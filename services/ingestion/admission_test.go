package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
	"github.com/cairn-dev/cairn/pkg/testport"
	"github.com/cairn-dev/cairn/services/ingestion/internal/app"
)

// TestAdmission runs ingestion in process with small bounds and checks at
// the gRPC level that calls over a bound are refused when their stream
// opens, per key and overall, with ResourceExhausted and a RetryInfo, and
// that a stream's slot comes back when it ends. All calls share one
// connection, so their streams reach the server in the order they are
// opened.
func TestAdmission(t *testing.T) {
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.json")
	kr, err := auth.LoadKeyring(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	tok := func(ws string, role auth.Role) string {
		s, err := kr.Create(ws, role)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	writeA, writeB, writeC := tok("ws", auth.RoleWrite), tok("ws", auth.RoleWrite), tok("ws", auth.RoleWrite)
	svc1, svc2, svc3 := tok("", auth.RoleService), tok("", auth.RoleService), tok("", auth.RoleService)

	addr := testport.Addr(t)
	cfg, err := app.Parse([]string{
		"-grpc-addr", addr, "-metrics-addr", "", "-keys", keysPath, "-data", filepath.Join(dir, "data"),
		"-max-inflight-requests", "2", "-max-inflight-requests-per-key", "1",
		"-max-ingest-streams", "2", "-max-ingest-streams-per-key", "1",
		"-admit-target", "0",
		"-max-subscribers", "2", "-max-subscribers-per-key", "1",
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	// No key on the connection: each call names its own.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	streamtest.WaitServing(t, conn)
	client := ingestionv1.NewIngestionServiceClient(conn)
	as := func(token string) grpc.CallOption { return grpc.PerRPCCredentials(auth.Bearer(token)) }

	// One event, so that a Subscribe of its partition answers at once.
	groupID, _ := structpb.NewStruct(map[string]any{"groupId": "acct-1"})
	ev := &ingestionv1.Event{MessageId: "m1", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "login", UserId: "u1", Context: groupID}
	if _, err := client.Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{ev}}, as(writeA)); err != nil {
		t.Fatal(err)
	}
	part := stream.Partition("ws", "acct-1", cfg.Server.Partitions)

	// subscribe opens a Subscribe as token and reads its first answer.
	subscribe := func(sctx context.Context, token string) error {
		s, err := client.Subscribe(sctx, &ingestionv1.SubscribeRequest{Partition: part, FromOffset: 1}, as(token))
		if err == nil {
			_, err = s.Recv()
		}
		return err
	}
	// ingestStream opens an IngestStream as token and has one batch taken.
	ingestStream := func(sctx context.Context, token string) error {
		s, err := client.IngestStream(sctx, as(token))
		if err != nil {
			return err
		}
		// A stream the server refused may fail Send with io.EOF; its
		// status is then what Recv returns (grpc.ClientStream.SendMsg).
		if err := s.Send(&ingestionv1.IngestStreamRequest{Sequence: 1, Batch: &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{ev}}}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = s.Recv()
		return err
	}
	ingest := func(token string) error {
		_, err := client.Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{ev}}, as(token))
		return err
	}

	held, release := context.WithCancel(ctx)
	steps := []struct {
		name  string
		call  func() error
		want  codes.Code
		limit string // in the refusal's message
	}{
		{"a subscriber", func() error { return subscribe(held, svc1) }, codes.OK, ""},
		{"the same key's second subscriber", func() error { return subscribe(ctx, svc1) }, codes.ResourceExhausted, "for this API key"},
		{"another key's subscriber", func() error { return subscribe(held, svc2) }, codes.OK, ""},
		{"a third subscriber", func() error { return subscribe(ctx, svc3) }, codes.ResourceExhausted, "overloaded: 2 requests"},
		{"an open IngestStream", func() error { return ingestStream(held, writeA) }, codes.OK, ""},
		{"the same key's second IngestStream", func() error { return ingestStream(ctx, writeA) }, codes.ResourceExhausted, "for this API key"},
		{"the same key's Ingest meanwhile, another class", func() error { return ingest(writeA) }, codes.OK, ""},
		{"another key's IngestStream", func() error { return ingestStream(held, writeB) }, codes.OK, ""},
		{"a third IngestStream", func() error { return ingestStream(ctx, writeC) }, codes.ResourceExhausted, "overloaded: 2 requests"},
	}
	for _, s := range steps {
		err := s.call()
		st := status.Convert(err)
		if st.Code() != s.want {
			t.Fatalf("%s: %v, want %s", s.name, err, s.want)
		}
		if s.want != codes.ResourceExhausted {
			continue
		}
		var retry *errdetails.RetryInfo
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				retry = ri
			}
		}
		if retry == nil || retry.GetRetryDelay().AsDuration() < admit.MinRetry {
			t.Errorf("%s: details %v, want a RetryInfo", s.name, st.Details())
		}
		if !strings.Contains(st.Message(), s.limit) {
			t.Errorf("%s: message %q does not name the bound (%q)", s.name, st.Message(), s.limit)
		}
	}

	// When the held streams end, their slots come back (shortly: the
	// server learns of it from the connection).
	release()
	for i := 0; ; i++ {
		err := subscribe(ctx, svc3)
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || i > 10_000 {
			t.Fatalf("subscribe after the others ended: %v", err)
		}
	}
}
