package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

const crashParts = 4

// healthLog serves a local log as the health service's Subscribe stream,
// once open is closed: the test applies its plays file first.
type healthLog struct {
	healthv1.UnimplementedHealthServiceServer
	log  *stream.Log
	open chan struct{}
}

func (f *healthLog) Subscribe(req *healthv1.SubscribeRequest, ss grpc.ServerStreamingServer[healthv1.SubscribeResponse]) error {
	select {
	case <-f.open:
	case <-ss.Context().Done():
		return nil
	}
	err := f.log.Serve(ss.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []stream.Record, head uint64) error {
		resp := &healthv1.SubscribeResponse{HeadOffset: head}
		for _, r := range recs {
			lr := &healthv1.LogRecord{}
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

// TestSIGKILLDeliversEveryTriggerOnce kills the plays process with SIGKILL
// at random points while it consumes a health log and delivers one signed
// webhook per risk signal. Every trigger is delivered at least once, and a
// trigger delivered twice carries the same webhook-id both times.
func TestSIGKILLDeliversEveryTriggerOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "cairn-plays")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const accounts = 600
	hl, err := stream.OpenLog(storetest.Open(t), "health", stream.LogOptions{Partitions: crashParts})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2031, 1, 6, 8, 0, 0, 0, time.UTC)
	for a := range accounts {
		acct := fmt.Sprintf("acct-%03d", a)
		data, err := proto.Marshal(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
			Workspace: "w", AccountId: acct, SignalId: acct + "/risk/usage_drop_30d", Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
			Reason: "usage_drop_30d", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(at.Add(time.Duration(a) * time.Minute)),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hl.Append(context.Background(), stream.Partition("w", acct, crashParts), data); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := &healthLog{log: hl, open: make(chan struct{})}
	g := grpc.NewServer()
	healthv1.RegisterHealthServiceServer(g, upstream)
	served := make(chan struct{})
	go func() { _ = g.Serve(lis); close(served) }()
	defer func() { g.Stop(); <-served }()

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("cairn-plays-crash-test-secret-0123"))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		byID = map[string]string{} // webhook-id → account
		seen = map[string]bool{}
		dups int
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(400)
			return
		}
		var p struct {
			Data struct {
				Account struct {
					ID string `json:"id"`
				} `json:"account"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("body: %v", err)
		}
		id, acct := r.Header.Get("webhook-id"), p.Data.Account.ID
		mu.Lock()
		if prev, ok := byID[id]; ok {
			dups++
			if prev != acct {
				t.Errorf("webhook-id %s carried account %s, then %s", id, prev, acct)
			}
		}
		byID[id] = acct
		seen[acct] = true
		mu.Unlock()
	}))
	defer rcv.Close()
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}

	dir := t.TempDir()
	keys, err := auth.LoadKeyring(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := keys.Create("w", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	svcKey, err := keys.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := streamtest.FreeAddr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-data", dir, "-grpc-addr", grpcAddr, "-metrics-addr", "", "-partitions", strconv.Itoa(crashParts),
			"-health-addr", lis.Addr().String(), "-stages-addr", "", "-routing-addr", "", "-allow-private-destinations")
		cmd.Env = append(os.Environ(), "CAIRN_SERVICE_KEY="+svcKey)
		logf, err := os.OpenFile(filepath.Join(dir, "plays.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			_ = logf.Close()
		})
		return cmd
	}
	cmd := start()
	// Not SERVING yet: its upstream holds the log back until the plays
	// file is applied. The API answers meanwhile.
	conn := streamtest.Dial(t, grpcAddr)
	file := fmt.Sprintf(`destinations:
  - id: crm
    type: webhook
    url: %s/hook
    secret: %s
plays:
  - id: usage-drop
    name: Usage dropped
    on: [signal.opened]
    when: record.kind == "risk"
    actions:
      - webhook: {destination: crm}
`, rcv.URL, secret)
	var applyErr error
	waitUntil(t, "the plays file applied", func() bool {
		_, applyErr = playsv1.NewPlaysServiceClient(conn).ApplyPlays(streamtest.Bearer(admin), &playsv1.ApplyPlaysRequest{Yaml: file})
		return applyErr == nil || status.Code(applyErr) == codes.InvalidArgument
	})
	if applyErr != nil {
		t.Fatalf("apply: %v", applyErr)
	}
	close(upstream.open)

	rng := rand.New(rand.NewPCG(7, 11))
	const kills = 6
	for k := range kills {
		// Kill at a random point of the run: while consuming, while
		// delivering, or between the two.
		target := received() + 1 + rng.IntN(max(1, (accounts-received())/3))
		waitUntil(t, fmt.Sprintf("kill %d: %d deliveries", k+1, target), func() bool { return received() >= target || cmd.ProcessState != nil })
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("SIGKILL %d with %d of %d triggers delivered", k+1, received(), accounts)
		cmd = start()
	}
	waitUntil(t, "every trigger delivered", func() bool { return received() == accounts })
	// Serving means the process is past start-up, where SIGTERM would
	// find no handler yet.
	streamtest.WaitServing(t, conn)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("plays exit after SIGTERM: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(byID) != accounts {
		t.Errorf("%d distinct webhook-ids for %d triggers: a trigger was decided twice", len(byID), accounts)
	}
	t.Logf("%d triggers, %d deliveries, %d duplicates (each with its original webhook-id)", accounts, len(byID)+dups, dups)
}

// waitUntil polls cond: it waits for another process to make progress,
// not for a deadline (the bound guards a hang).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
