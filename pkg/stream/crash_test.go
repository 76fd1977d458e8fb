package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

// The crash test re-executes the test binary as a consumer process; these
// environment variables switch it into that role.
const (
	envChild  = "CAIRN_STREAM_CRASH_CHILD"
	envAddr   = "CAIRN_STREAM_CRASH_ADDR"
	envDB     = "CAIRN_STREAM_CRASH_DB"
	envTarget = "CAIRN_STREAM_CRASH_TARGET"
)

const crashPartitions = 2

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(runCrashChild())
	}
	os.Exit(m.Run())
}

// runCrashChild consumes every partition into its own bbolt file, recording
// each applied message id in order and any id seen twice.
func runCrashChild() int {
	db, err := store.Open(os.Getenv(envDB), store.Options{SchemaVersion: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conn, err := grpc.NewClient(os.Getenv(envAddr), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	client := ingestionv1.NewIngestionServiceClient(conn)
	src := stream.GRPCSource(
		func(ctx context.Context, p uint32, from uint64) (grpc.ServerStreamingClient[ingestionv1.SubscribeResponse], error) {
			return client.Subscribe(ctx, &ingestionv1.SubscribeRequest{Partition: p, FromOffset: from})
		},
		func(r *ingestionv1.SubscribeResponse) ([]*ingestionv1.LogRecord, uint64) {
			return r.Records, r.HeadOffset
		},
	)
	parts := make([]uint32, crashPartitions)
	for i := range parts {
		parts[i] = uint32(i)
	}
	c, err := stream.NewConsumer(stream.ConsumerOptions[*ingestionv1.LogRecord]{
		Name: "ingestion", DB: db, Source: src, Partitions: parts,
		Offset: func(r *ingestionv1.LogRecord) uint64 { return r.Offset },
		Apply: func(tx *store.Tx, p uint32, recs []*ingestionv1.LogRecord) error {
			order, err := tx.Bucket("order", strconv.Itoa(int(p)))
			if err != nil {
				return err
			}
			seen, err := tx.Bucket("seen")
			if err != nil {
				return err
			}
			for _, r := range recs {
				id := r.GetEvent().GetMessageId()
				if seen.Get([]byte(id)) != nil {
					dups, err := tx.Bucket("dups")
					if err != nil {
						return err
					}
					if err := dups.Put([]byte(id), []byte{1}); err != nil {
						return err
					}
				}
				if err := seen.Put([]byte(id), []byte{1}); err != nil {
					return err
				}
				seq, _ := order.NextSequence()
				if err := order.Put(store.U64(seq), []byte(id)); err != nil {
					return err
				}
			}
			return nil
		},
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	if target, _ := strconv.ParseUint(os.Getenv(envTarget), 10, 64); target > 0 {
		for _, p := range parts {
			if err := c.WaitFor(ctx, p, target); err != nil {
				return 3
			}
		}
		cancel()
		_ = db.Close()
		return 0
	}
	select {} // run until killed
}

func TestConsumerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	dir := t.TempDir()
	upDB, err := store.Open(filepath.Join(dir, "up.db"), store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer upDB.Close()
	up, err := stream.OpenLog(upDB, "ingestion", stream.LogOptions{Partitions: crashPartitions})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ingestionv1.RegisterIngestionServiceServer(srv, &streamtest.Ingestion{Log: up})
	go srv.Serve(lis)
	defer srv.Stop()

	childDB := filepath.Join(dir, "child.db")
	start := func(target uint64) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=1", envAddr+"="+lis.Addr().String(), envDB+"="+childDB,
			envTarget+"="+strconv.FormatUint(target, 10))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// Produce continuously while the consumer is killed at random points.
	ctx, stopProducing := context.WithCancel(context.Background())
	produced := make(chan uint64, 1)
	go func() {
		var n uint64
		for ctx.Err() == nil && n < 20000 {
			n++
			for p := uint32(0); p < crashPartitions; p++ {
				rec, _ := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{MessageId: fmt.Sprintf("p%d-%06d", p, n)}}})
				if _, err := up.Append(context.Background(), p, rec); err != nil {
					t.Error(err)
				}
			}
		}
		produced <- n
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	const kills = 6
	for i := 0; i < kills; i++ {
		cmd := start(0)
		// The sleep picks a random kill point; nothing waits for a deadline.
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	stopProducing()
	n := <-produced
	if n == 0 {
		t.Fatal("producer wrote nothing")
	}

	// A last run drains to the head and exits cleanly.
	cmd := start(n)
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("draining consumer: %v", err)
		}
	case <-time.After(2 * time.Minute): // failure guard, not a speed assertion
		_ = cmd.Process.Kill()
		t.Fatal("draining consumer did not finish")
	}

	db, err := store.Open(childDB, store.Options{NoSync: true, SchemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *store.Tx) error {
		if b := tx.Bolt().Bucket([]byte("dups")); b != nil && b.Stats().KeyN > 0 {
			t.Errorf("%d records applied twice", b.Stats().KeyN)
		}
		for p := 0; p < crashPartitions; p++ {
			b, _ := tx.Bucket("order", strconv.Itoa(p))
			if b == nil {
				return fmt.Errorf("partition %d: nothing applied", p)
			}
			i := uint64(0)
			if err := b.ForEach(func(_, v []byte) error {
				i++
				if want := fmt.Sprintf("p%d-%06d", p, i); string(v) != want {
					return fmt.Errorf("partition %d position %d: got %s, want %s", p, i, v, want)
				}
				return nil
			}); err != nil {
				return err
			}
			if i != n {
				return fmt.Errorf("partition %d: applied %d records, want %d", p, i, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills; %d records per partition applied exactly once, in order", kills, n)
}
