package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
	"github.com/cairn-dev/cairn/pkg/testport"
	"github.com/cairn-dev/cairn/services/ingestion/internal/app"
)

// TestWorkspaceOwnership runs two ingestion replicas in process, split by
// workspace, and checks at the gRPC level that each accepts its own
// workspaces and refuses the other's with FailedPrecondition naming the
// workspace and the owning replica: Ingest, IngestStream (per batch, the
// stream going on), ListAccountEvents and DeleteSubject, with the
// workspace from the key or from the request (service key). Subscribe is
// served on every partition by both: each writes all of its own log.
func TestWorkspaceOwnership(t *testing.T) {
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.json")
	kr, err := auth.LoadKeyring(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 2
	ws := [replicas]string{stream.WorkspaceOn("ws-", 0, replicas), stream.WorkspaceOn("ws-", 1, replicas)}
	var write, admin [replicas]string
	for k := range replicas {
		if write[k], err = kr.Create(ws[k], auth.RoleWrite); err != nil {
			t.Fatal(err)
		}
		if admin[k], err = kr.Create(ws[k], auth.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	serviceTok, err := kr.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var addrs [replicas]string
	done := make(chan error, replicas)
	for k := range replicas {
		addrs[k] = testport.Addr(t)
		cfg, err := app.Parse([]string{
			"-grpc-addr", addrs[k], "-metrics-addr", "", "-keys", keysPath,
			"-data", filepath.Join(dir, "data-"+strconv.Itoa(k)),
			"-replica", strconv.Itoa(k), "-replicas", strconv.Itoa(replicas),
		}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- app.Run(ctx, cfg) }()
	}
	t.Cleanup(func() {
		cancel()
		for range replicas {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	})

	event := func(id string) *ingestionv1.Event {
		return &ingestionv1.Event{
			MessageId: id, Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "login", UserId: "u1",
			Timestamp: timestamppb.Now(),
		}
	}
	// refused checks err is the refusal of ws, owned by replica owner.
	refused := func(t *testing.T, what string, err error, ws string, owner int) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition {
			t.Fatalf("%s: %v, want FailedPrecondition", what, err)
		}
		want := map[string]string{"workspace": ws, "replica": strconv.Itoa(owner), "replicas": strconv.Itoa(replicas)}
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				if fmt.Sprint(info.GetMetadata()) != fmt.Sprint(want) {
					t.Errorf("%s: ErrorInfo metadata %v, want %v", what, info.GetMetadata(), want)
				}
				return
			}
		}
		t.Errorf("%s: no ErrorInfo detail in %v", what, st)
	}

	for k := range replicas {
		other := 1 - k
		conn := dial(t, addrs[k], write[k])
		streamtest.WaitServing(t, conn)
		own := ingestionv1.NewIngestionServiceClient(conn)
		foreign := ingestionv1.NewIngestionServiceClient(dial(t, addrs[k], write[other]))
		foreignAdmin := ingestionv1.NewIngestionServiceClient(dial(t, addrs[k], admin[other]))
		service := ingestionv1.NewIngestionServiceClient(dial(t, addrs[k], serviceTok))
		name := fmt.Sprintf("replica %d", k)

		resp, err := own.Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{event("own-" + name)}})
		if err != nil || resp.GetResults()[0].GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED {
			t.Fatalf("%s: own workspace Ingest = %v, %v", name, resp, err)
		}
		_, err = foreign.Ingest(ctx, &ingestionv1.IngestRequest{Events: []*ingestionv1.Event{event("foreign-" + name)}})
		refused(t, name+": Ingest with the other workspace's key", err, ws[other], other)
		_, err = service.Ingest(ctx, &ingestionv1.IngestRequest{Workspace: ws[other], Events: []*ingestionv1.Event{event("svc-" + name)}})
		refused(t, name+": Ingest naming the other workspace", err, ws[other], other)
		_, err = foreignAdmin.ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: "a1"})
		refused(t, name+": ListAccountEvents", err, ws[other], other)
		_, err = foreignAdmin.DeleteSubject(ctx, &ingestionv1.DeleteSubjectRequest{UserId: "u1"})
		refused(t, name+": DeleteSubject", err, ws[other], other)

		// One stream, one batch per workspace: the foreign batch is refused
		// and the stream goes on to the own batch.
		st, err := service.IngestStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range []string{ws[other], ws[k]} {
			if err := st.Send(&ingestionv1.IngestStreamRequest{Sequence: uint64(i), Batch: &ingestionv1.IngestRequest{
				Workspace: w, Events: []*ingestionv1.Event{event(fmt.Sprintf("stream-%s-%d", name, i))},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		var got []*ingestionv1.IngestStreamResponse
		for {
			r, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: IngestStream: %v", name, err)
			}
			got = append(got, r)
		}
		if len(got) != 2 || codes.Code(got[0].GetError().GetCode()) != codes.FailedPrecondition || got[1].GetError() != nil ||
			got[1].GetResult().GetResults()[0].GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED {
			t.Errorf("%s: IngestStream = %v, want the foreign batch refused and the own accepted", name, got)
		}

		// A consumer's address list must be in replica order: entry k of a
		// reversed list reaches the other replica and is refused, instead
		// of feeding its log to replica k's cursors.
		for _, tc := range []struct {
			list string
			ok   bool
		}{{addrs[0] + "," + addrs[1], true}, {addrs[1] + "," + addrs[0], false}, {addrs[k], false}} {
			up := pkgserver.NewUpstreams(serviceTok)
			sources, err := up.Ingestion(tc.list)
			if err != nil {
				t.Fatal(err)
			}
			sctx, scancel := context.WithCancel(ctx)
			_, err = sources[0](sctx, 0, 0)
			scancel()
			_ = up.Close()
			if tc.ok != (err == nil) || (err != nil && status.Code(err) != codes.FailedPrecondition) {
				t.Errorf("%s: subscribe through list %q entry 0: %v, want ok=%v or FailedPrecondition", name, tc.list, err, tc.ok)
			}
		}

		// Every partition of this replica's log is served.
		info, err := service.GetLogInfo(ctx, &ingestionv1.GetLogInfoRequest{Workspace: ws[k]})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range info.GetPartitions() {
			sctx, scancel := context.WithCancel(ctx)
			sub, err := service.Subscribe(sctx, &ingestionv1.SubscribeRequest{Partition: p.GetPartition(), FromOffset: 0})
			if err == nil {
				_, err = sub.Recv()
			}
			scancel()
			if err != nil {
				t.Errorf("%s: Subscribe partition %d: %v", name, p.GetPartition(), err)
			}
		}
	}
}
