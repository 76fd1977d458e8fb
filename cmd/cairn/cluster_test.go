package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// TestRunCluster starts `cairn run --cluster` with real binaries: three
// `cairn nats-node` children form a JetStream cluster, ingestion runs with
// -log-backend jetstream on it, and an event sent with `cairn ingest`
// reaches the R3 streams and stages (which reads it from ingestion's
// Subscribe, served from the streams). Then one node is killed with
// SIGKILL: `cairn run` restarts it on its own store, and it catches up.
func TestRunCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binaries and a 3-node NATS cluster")
	}
	root := workspaceRoot(t)
	bin := t.TempDir()
	built := buildSuite(t, root, bin)
	for _, s := range []string{"ingestion", "stages"} {
		if !strings.Contains(strings.Join(built, ","), s) {
			t.Fatalf("%s does not build", s)
		}
	}
	base := testport.Base(t, 30)
	suite := startSuite(t, bin, true, "--cluster", "--services=ingestion,stages", "--no-demo", "--partitions", "4", "--base-port", fmt.Sprint(base))
	want := fmt.Sprintf("nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d", base+21, base+22, base+23)
	if suite.info.NATS != want {
		t.Fatalf("run.json nats_url = %q, want %q", suite.info.NATS, want)
	}
	for i := range 3 {
		if _, err := os.Stat(filepath.Join(suite.data, "nats", "n"+strconv.Itoa(i), "jetstream")); err != nil {
			t.Errorf("node n%d's store is not under the data directory: %v", i, err)
		}
	}

	const account = "cluster-acme"
	var nd bytes.Buffer
	for i, ev := range []string{
		`"event":"report_created"`, `"event":"dashboard_shared"`,
		`"event":"crm.mql","properties":{"email":"pat@cluster-acme.com","score":80}`,
	} {
		fmt.Fprintf(&nd, `{"type":"track","messageId":"cluster-%d","userId":"pat","context":{"groupId":"%s"},%s,"timestamp":"2026-10-30T10:0%d:00Z"}`+"\n", i, account, ev, i)
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, nd.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(filepath.Join(bin, "cairn"), "ingest", file, "--data", suite.data).CombinedOutput(); err != nil || !strings.Contains(string(b), "accepted 3, duplicate 0, rejected 0") {
		t.Fatalf("cairn ingest: %v\n%s", err, b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nc, err := nats.Connect(suite.info.NATS, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The acknowledgement came after a quorum stored the events: the
	// streams hold all three, on three replicas.
	var stored uint64
	for p := range 4 {
		st, err := js.Stream(ctx, fmt.Sprintf("cairn-ingestion-0-events-p%05d", p))
		if err != nil {
			t.Fatalf("stream of partition %d: %v", p, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != 3 {
			t.Errorf("%s has %d replicas, want 3", info.Config.Name, info.Config.Replicas)
		}
		stored += info.State.Msgs
	}
	if stored != 3 {
		t.Errorf("the streams hold %d events, want 3", stored)
	}
	within(t, 2*time.Minute, "the account in stages, read through ingestion from the streams", func() error {
		resp, err := stagesv1.NewStagesServiceClient(suite.conn(t, "stages")).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: account})
		if err != nil {
			return err
		}
		if resp.GetJourney().GetStage() == "" {
			return errors.New("not placed yet")
		}
		return nil
	})

	// SIGKILL node n1: cairn run restarts it on its own store, and every
	// stream is back to three current replicas.
	pid, err := childPID(suite.cmd.Process.Pid, "nats-node", "--name", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	within(t, time.Minute, "cairn run restarts the killed node", func() error {
		if !strings.Contains(suite.out.String(), "nats-n1 exited (signal: killed); restarting") {
			return errors.New("no restart reported")
		}
		if _, err := childPID(suite.cmd.Process.Pid, "nats-node", "--name", "n1"); err != nil {
			return err
		}
		return nil
	})
	within(t, 2*time.Minute, "every stream has three current replicas again", func() error {
		for p := range 4 {
			// Each request bounded: one sent while the client reconnects
			// would otherwise wait for the whole test's context.
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			st, err := js.Stream(rctx, fmt.Sprintf("cairn-ingestion-0-events-p%05d", p))
			if err != nil {
				return err
			}
			info, err := st.Info(rctx)
			if err != nil {
				return err
			}
			if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				return fmt.Errorf("%s: cluster %+v", info.Config.Name, info.Cluster)
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline {
					return fmt.Errorf("%s: replica %s not current", info.Config.Name, r.Name)
				}
			}
		}
		return nil
	})
	// Still taking events, deduplicating a resend, after the restart.
	if b, err := exec.Command(filepath.Join(bin, "cairn"), "ingest", file, "--data", suite.data).CombinedOutput(); err != nil || !strings.Contains(string(b), "accepted 0, duplicate 3, rejected 0") {
		t.Errorf("cairn ingest after the node's restart: %v\n%s", err, b)
	}
	if err := suite.stop(2 * time.Minute); err != nil { // failure guard
		t.Errorf("cairn run --cluster after SIGINT: %v, want status 0", err)
	}
	if strings.Contains(suite.out.String(), "killed after not stopping") {
		t.Errorf("unclean stop (see output)")
	}
}

// childPID finds the child of parent whose command line holds args in
// order (Linux /proc; a child is listed under the thread that forked it).
func childPID(parent int, args ...string) (int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("list the children of %d: %v", parent, err)
	}
	var kids []string
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err == nil {
			kids = append(kids, strings.Fields(string(b))...)
		}
	}
	for _, f := range kids {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline)+"\x00", strings.Join(args, "\x00")+"\x00") {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child of %d runs %s", parent, strings.Join(args, " "))
}
