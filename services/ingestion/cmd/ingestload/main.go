// Command ingestload drives a running ingestion service with concurrent
// batches (unary Ingest, or IngestStream with -stream) and reports durable
// events per second and the ack latency of batches (p50, p99, max). With
// -segment it posts the same batches as Segment /v1/batch JSON to the
// gateway instead, to measure the tracking API end to end.
//
//	ingestload -addr 127.0.0.1:7101 -key $CAIRN_API_KEY -batch 100 -conc 8 -duration 30s
//	ingestload -segment http://127.0.0.1:8080 -key $WRITE_KEY -batch 100 -conc 16 -duration 30s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// options are the command-line flags.
type options struct {
	addr, key, workspace string
	batch, conc          int
	duration             time.Duration
	n                    int64
	accounts             int
	stream               bool
	window               int
	runID                string
	rate                 float64
	segment              string
}

// totals are shared counters of all workers.
type totals struct {
	accepted, duplicates, rejected, failed atomic.Int64
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:7101", "ingestion gRPC address")
	flag.StringVar(&o.key, "key", os.Getenv("CAIRN_API_KEY"), "API key with the write role (default $CAIRN_API_KEY)")
	flag.StringVar(&o.workspace, "workspace", "", "workspace (required with a service key)")
	flag.IntVar(&o.batch, "batch", 100, "events per batch")
	flag.IntVar(&o.conc, "conc", 8, "concurrent callers (streams with -stream)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run")
	flag.Int64Var(&o.n, "n", 0, "stop after this many events (0: run for -duration)")
	flag.IntVar(&o.accounts, "accounts", 1000, "distinct accounts the events are spread over")
	flag.BoolVar(&o.stream, "stream", false, "use IngestStream (one stream per caller)")
	flag.IntVar(&o.window, "window", 1, "with -stream: batches in flight per stream")
	flag.Float64Var(&o.rate, "rate", 0, "target events/s, paced open-loop with latency counted from each batch's scheduled time (0: as fast as the callers go)")
	flag.StringVar(&o.segment, "segment", "", "instead of gRPC, POST Segment /v1/batch JSON to this gateway base URL (e.g. http://127.0.0.1:8080), write key in Basic auth")
	flag.StringVar(&o.runID, "run", fmt.Sprint(time.Now().UnixNano()), "prefix of generated message ids")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ingestload:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.key == "" {
		return errors.New("-key: required")
	}
	if o.batch <= 0 || o.conc <= 0 || o.accounts <= 0 {
		return errors.New("-batch, -conc and -accounts must be positive")
	}
	if o.rate < 0 {
		return errors.New("-rate: must not be negative")
	}
	if o.segment != "" && o.stream {
		return errors.New("-segment and -stream: choose one")
	}
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.Bearer(o.key)), grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		return fmt.Errorf("dial %s: %w", o.addr, err)
	}
	defer conn.Close()
	client := ingestionv1.NewIngestionServiceClient(conn)
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conc}}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()

	var (
		t       totals
		next    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		wg      sync.WaitGroup
		firstMu sync.Mutex
		firstEr error
	)
	props, err := structpb.NewStruct(map[string]any{"plan": "pro", "rows": 12, "path": "/reports/new"})
	if err != nil {
		return err
	}
	makeBatch := func(n int64) *ingestionv1.IngestRequest {
		req := &ingestionv1.IngestRequest{Workspace: o.workspace, Events: make([]*ingestionv1.Event, o.batch)}
		for i := range req.Events {
			seq := n*int64(o.batch) + int64(i)
			c, _ := structpb.NewStruct(map[string]any{"groupId": fmt.Sprint("acct-", seq%int64(o.accounts))})
			req.Events[i] = &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
				MessageId: fmt.Sprint(o.runID, "-", seq), UserId: fmt.Sprint("user-", seq%(int64(o.accounts)*5)),
				Event: "report_created", Properties: props, Context: c}
		}
		return req
	}
	var start time.Time
	// take hands out the next batch number and the time it is due. With
	// -rate, batches are due on a fixed schedule and latency counts from
	// that time, so a slow server cannot hide its delay by slowing the
	// callers down (coordinated omission).
	take := func() (int64, time.Time, bool) {
		n := next.Add(1) - 1
		if o.n > 0 && n*int64(o.batch) >= o.n {
			return 0, time.Time{}, false
		}
		due := time.Now()
		if o.rate > 0 {
			due = start.Add(time.Duration(float64(n*int64(o.batch)) / o.rate * float64(time.Second)))
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
				return 0, time.Time{}, false
			}
		}
		return n, due, ctx.Err() == nil
	}
	record := func(resp *ingestionv1.IngestResponse, d time.Duration, local *[]time.Duration) {
		t.accepted.Add(int64(resp.GetAccepted()))
		t.duplicates.Add(int64(resp.GetDuplicates()))
		t.rejected.Add(int64(resp.GetRejected()))
		*local = append(*local, d)
	}
	fail := func(err error) {
		t.failed.Add(1)
		firstMu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		firstMu.Unlock()
	}
	start = time.Now()
	for range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			if !o.stream {
				for {
					n, due, ok := take()
					if !ok {
						return
					}
					var req *ingestionv1.IngestRequest
					if o.segment == "" {
						req = makeBatch(n)
					}
					t0 := time.Now()
					if o.rate > 0 {
						t0 = due
					}
					var (
						resp *ingestionv1.IngestResponse
						err  error
					)
					if o.segment != "" {
						resp, err = postSegment(httpClient, o, n)
					} else {
						resp, err = client.Ingest(context.WithoutCancel(ctx), req)
					}
					if err != nil {
						fail(err)
						continue
					}
					record(resp, time.Since(t0), &local)
				}
			}
			s, err := client.IngestStream(context.WithoutCancel(ctx))
			if err != nil {
				fail(err)
				return
			}
			// The sender keeps up to -window batches in flight; the
			// receiver matches answers to send times by sequence.
			var sentMu sync.Mutex
			sent := map[uint64]time.Time{}
			slots := make(chan struct{}, max(1, o.window))
			sendDone, recvDone := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(sendDone)
				defer func() { _ = s.CloseSend() }()
				for {
					select {
					case slots <- struct{}{}:
					case <-recvDone:
						return
					}
					n, due, ok := take()
					if !ok {
						return
					}
					if o.rate <= 0 {
						due = time.Now()
					}
					sentMu.Lock()
					sent[uint64(n)] = due
					sentMu.Unlock()
					if err := s.Send(&ingestionv1.IngestStreamRequest{Sequence: uint64(n), Batch: makeBatch(n)}); err != nil {
						fail(err)
						return
					}
				}
			}()
			for {
				resp, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					fail(err)
					break
				}
				sentMu.Lock()
				t0 := sent[resp.GetSequence()]
				delete(sent, resp.GetSequence())
				sentMu.Unlock()
				if be := resp.GetError(); be != nil {
					// Counted as failed, not resent: the figures are for
					// what the server took, and failures are printed.
					fail(status.Error(codes.Code(be.GetCode()), be.GetMessage()))
				} else {
					record(resp.GetResult(), time.Since(t0), &local)
				}
				<-slots
			}
			close(recvDone)
			<-sendDone
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	mode := "unary"
	switch {
	case o.stream:
		mode = "stream"
	case o.segment != "":
		mode = "segment"
	}
	fmt.Printf("mode=%s batch=%d conc=%d rate=%.0f elapsed=%s\n", mode, o.batch, o.conc, o.rate, elapsed.Round(time.Millisecond))
	fmt.Printf("accepted=%d duplicates=%d rejected=%d failed_batches=%d\n", t.accepted.Load(), t.duplicates.Load(), t.rejected.Load(), t.failed.Load())
	fmt.Printf("events/s=%.0f batches=%d ack_p50=%s ack_p99=%s ack_max=%s\n",
		float64(t.accepted.Load())/elapsed.Seconds(), len(lat), pct(0.50), pct(0.99), pct(1))
	if firstEr != nil {
		fmt.Printf("first error: %v\n", firstEr)
	}
	return nil
}

// postSegment sends batch n as a Segment /v1/batch request with the write
// key in Basic auth, as analytics SDKs do, and reads the gateway's counts.
func postSegment(c *http.Client, o options, n int64) (*ingestionv1.IngestResponse, error) {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i := range o.batch {
		seq := n*int64(o.batch) + int64(i)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","messageId":"%s-%d","userId":"user-%d","event":"report_created",`+
			`"properties":{"plan":"pro","rows":12,"path":"/reports/new"},"context":{"groupId":"acct-%d"}}`,
			o.runID, seq, seq%(int64(o.accounts)*5), seq%int64(o.accounts))
	}
	b.WriteString(`]}`)
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(o.segment, "/")+"/v1/batch", &b)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(o.key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /v1/batch: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	var r struct {
		Accepted   int               `json:"accepted"`
		Duplicates int               `json:"duplicates"`
		Rejected   []json.RawMessage `json:"rejected"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("POST /v1/batch: decode response: %w", err)
	}
	return &ingestionv1.IngestResponse{Accepted: int32(r.Accepted), Duplicates: int32(r.Duplicates), Rejected: int32(len(r.Rejected))}, nil
}
