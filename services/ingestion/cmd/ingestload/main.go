// Command ingestload drives a running ingestion service with concurrent
// batches (unary Ingest, or IngestStream with -stream) and reports durable
// events per second and the ack latency of batches (p50, p99, max). With
// -segment it posts the same batches as Segment /v1/batch JSON to the
// gateway instead, to measure the tracking API end to end.
//
// Failed batches are told apart: shed (HTTP 429, ResourceExhausted: the
// server refused them at once, as admission control should), timeouts (the
// -timeout per request ran out, HTTP 504, DeadlineExceeded) and other
// errors. Latency percentiles are of accepted batches; "ack" counts from
// when a batch was due (its scheduled time with -rate), "sent" from when it
// was sent, so that a generator falling behind its schedule shows.
//
//	ingestload -addr 127.0.0.1:7101 -key $CAIRN_API_KEY -batch 100 -conc 8 -duration 30s
//	ingestload -segment http://127.0.0.1:8080 -key $WRITE_KEY -batch 100 -conc 16 -duration 30s
//	ingestload -segment http://127.0.0.1:8080 -key $K1,$K2 -batch 500 -conc 1000 -rate 200000 -duration 60s   # overload
//	ingestload -segment http://127.0.0.1:8080 -ok-body ok -key $WRITE_KEY -batch 100 -conc 8   # rudder-server (scripts/rudder-bench.sh)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
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
	okBody               string
	timeout              time.Duration
	keys                 []string
}

// totals are shared counters of all workers.
type totals struct {
	accepted, duplicates, rejected, failed atomic.Int64
	// failed batches by kind
	shed, timeouts, others atomic.Int64
}

// httpError is a gateway answer other than 200.
type httpError struct {
	code int
	body string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("POST /v1/batch: %d %s: %s", e.code, http.StatusText(e.code), e.body)
}

// kind sorts a failed batch: shed, timeout or other.
func kind(err error) string {
	var he *httpError
	var ne net.Error
	switch {
	case errors.As(err, &he) && he.code == http.StatusTooManyRequests,
		status.Code(err) == codes.ResourceExhausted:
		return "shed"
	case errors.As(err, &he) && he.code == http.StatusGatewayTimeout,
		status.Code(err) == codes.DeadlineExceeded,
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:7101", "ingestion gRPC address")
	var keys string
	flag.StringVar(&keys, "key", os.Getenv("CAIRN_API_KEY"), "API key with the write role (default $CAIRN_API_KEY); several comma-separated are used by the callers in turn")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "give up on a request after this long (counted as a timeout)")
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
	flag.StringVar(&o.okBody, "ok-body", "", "with -segment: a 200 answer with this body (any case; rudder-server answers ok) counts every event of the batch as accepted; other 200 bodies are read as Cairn's JSON counts")
	flag.StringVar(&o.runID, "run", fmt.Sprint(time.Now().UnixNano()), "prefix of generated message ids")
	flag.Parse()
	for _, k := range strings.Split(keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			o.keys = append(o.keys, k)
		}
	}
	if len(o.keys) > 0 {
		o.key = o.keys[0]
	}
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
	// One connection per key: the key travels as the connection's
	// credentials.
	clients := make([]ingestionv1.IngestionServiceClient, len(o.keys))
	conns := make([]*grpc.ClientConn, len(o.keys))
	for i, k := range o.keys {
		conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(auth.Bearer(k)), grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
		if err != nil {
			return fmt.Errorf("dial %s: %w", o.addr, err)
		}
		defer conn.Close()
		clients[i], conns[i] = ingestionv1.NewIngestionServiceClient(conn), conn
	}
	httpClient := &http.Client{Timeout: o.timeout, Transport: &http.Transport{MaxIdleConnsPerHost: o.conc, MaxIdleConns: o.conc}}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()

	var (
		t       totals
		next    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		sentLat []time.Duration
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
			// Fixed-width ids, as the Segment body has them, so that a
			// raw batch can be patched in place (rawBatch) and every path
			// names the same accounts.
			c, _ := structpb.NewStruct(map[string]any{"groupId": fmt.Sprintf("acct-%0*d", seqWidth, seq%int64(o.accounts))})
			req.Events[i] = &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
				MessageId: fmt.Sprintf("%s-%0*d", o.runID, seqWidth, seq), UserId: fmt.Sprintf("user-%0*d", seqWidth, seq%(int64(o.accounts)*5)),
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
		switch kind(err) {
		case "shed":
			t.shed.Add(1)
			return // expected under overload; the first error shown is another kind
		case "timeout":
			t.timeouts.Add(1)
		default:
			t.others.Add(1)
		}
		firstMu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		firstMu.Unlock()
	}
	start = time.Now()
	for w := range o.conc {
		wg.Add(1)
		client, conn := clients[w%len(clients)], conns[w%len(conns)]
		key := o.keys[w%len(o.keys)]
		go func() {
			defer wg.Done()
			var local, localSent []time.Duration
			defer func() {
				mu.Lock()
				lat, sentLat = append(lat, local...), append(sentLat, localSent...)
				mu.Unlock()
			}()
			var (
				seg segmentBody
				raw *rawBatch
			)
			if !o.stream {
				for {
					n, due, ok := take()
					if !ok {
						return
					}
					// A caller encodes its batch once and then patches only
					// the message ids, so that a thousand callers on the
					// load machine spend their CPU sending, not encoding.
					if o.segment == "" {
						if raw == nil {
							raw = newRawBatch(makeBatch(n), o.runID, int64(o.accounts))
						}
						raw.patch(n * int64(o.batch))
					}
					t0 := time.Now()
					if o.rate > 0 {
						t0 = due
					}
					var (
						resp *ingestionv1.IngestResponse
						err  error
					)
					sent := time.Now()
					if o.segment != "" {
						resp, err = seg.post(httpClient, o, key, n)
					} else {
						cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
						resp = &ingestionv1.IngestResponse{}
						err = conn.Invoke(cctx, ingestionv1.IngestionService_Ingest_FullMethodName, raw, resp, grpc.ForceCodec(rawCodec{}))
						cancel()
					}
					if err != nil {
						fail(err)
						continue
					}
					record(resp, time.Since(t0), &local)
					localSent = append(localSent, time.Since(sent))
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
	slices.Sort(sentLat)
	pctOf := func(l []time.Duration, q float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(q*float64(len(l))))]
	}
	pct := func(q float64) time.Duration { return pctOf(lat, q) }
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
	if len(sentLat) > 0 {
		fmt.Printf("sent_p50=%s sent_p99=%s sent_max=%s\n", pctOf(sentLat, 0.5), pctOf(sentLat, 0.99), pctOf(sentLat, 1))
	}
	fmt.Printf("shed=%d timeouts=%d other_failures=%d\n", t.shed.Load(), t.timeouts.Load(), t.others.Load())
	if firstEr != nil {
		fmt.Printf("first error: %v\n", firstEr)
	}
	return nil
}

// segmentBody is one caller's Segment /v1/batch body, built once and then
// patched in place for each batch: only the sequence numbers in message
// ids, users and accounts change, so that a generator driving a thousand
// callers on the same machine spends little CPU on it.
type segmentBody struct {
	buf []byte
	// seqs are the offsets of each event's fixed-width sequence fields:
	// message id (digits of seq), user (seq % users), account.
	msg, user, acct []int
}

const seqWidth = 16

func (b *segmentBody) build(o options, n int64) {
	if b.buf == nil {
		var buf bytes.Buffer
		buf.WriteString(`{"batch":[`)
		zeros := strings.Repeat("0", seqWidth)
		for i := range o.batch {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"type":"track","messageId":"` + o.runID + `-`)
			b.msg = append(b.msg, buf.Len())
			buf.WriteString(zeros + `","userId":"user-`)
			b.user = append(b.user, buf.Len())
			buf.WriteString(zeros + `","event":"report_created",` +
				`"properties":{"plan":"pro","rows":12,"path":"/reports/new"},"context":{"groupId":"acct-`)
			b.acct = append(b.acct, buf.Len())
			buf.WriteString(zeros + `"}}`)
		}
		buf.WriteString(`]}`)
		b.buf = buf.Bytes()
	}
	for i := range o.batch {
		seq := n*int64(o.batch) + int64(i)
		putDigits(b.buf[b.msg[i]:b.msg[i]+seqWidth], seq)
		putDigits(b.buf[b.user[i]:b.user[i]+seqWidth], seq%(int64(o.accounts)*5))
		putDigits(b.buf[b.acct[i]:b.acct[i]+seqWidth], seq%int64(o.accounts))
	}
}

// putDigits writes v into dst in decimal, zero-padded to len(dst).
func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// post sends batch n as a Segment /v1/batch request with the write key in
// Basic auth, as analytics SDKs do, and reads the gateway's counts.
func (b *segmentBody) post(c *http.Client, o options, key string, n int64) (*ingestionv1.IngestResponse, error) {
	b.build(o, n)
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(o.segment, "/")+"/v1/batch", bytes.NewReader(b.buf))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(key, "")
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
		return nil, &httpError{code: resp.StatusCode, body: string(bytes.TrimSpace(body))}
	}
	// Segment-compatible servers other than Cairn's gateway answer a
	// stored batch with a fixed body and no counts.
	if o.okBody != "" && bytes.EqualFold(bytes.TrimSpace(body), []byte(o.okBody)) {
		return &ingestionv1.IngestResponse{Accepted: int32(o.batch)}, nil
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

// rawBatch is an encoded IngestRequest whose message ids, users and
// accounts are patched in place for each batch (they have a fixed width).
// Patching only the message ids would send every batch of a caller to the
// same accounts: callers x batch accounts in all, whatever -accounts says.
type rawBatch struct {
	b              []byte
	accounts       int64
	ids, user, acc []int // offsets of each event's sequence digits
}

func newRawBatch(req *ingestionv1.IngestRequest, runID string, accounts int64) *rawBatch {
	b, err := proto.Marshal(req)
	if err != nil {
		panic(err) // a batch built here always encodes
	}
	r := &rawBatch{b: b, accounts: accounts}
	r.ids = offsets(b, runID+"-")
	r.user = offsets(b, "user-")
	r.acc = offsets(b, "acct-")
	if len(r.user) != len(r.ids) || len(r.acc) != len(r.ids) {
		panic("ingestload: a batch's users or accounts are not one per event") // makeBatch writes one of each
	}
	return r
}

// offsets are the positions of the seqWidth digits after each prefix in b.
func offsets(b []byte, prefix string) []int {
	var out []int
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(prefix))
		if j < 0 {
			return out
		}
		out = append(out, i+j+len(prefix))
		i += j + len(prefix) + seqWidth
	}
}

// patch numbers the events first, first+1, ..., with their users and
// accounts as makeBatch derives them from the sequence number.
func (r *rawBatch) patch(first int64) {
	for i := range r.ids {
		seq := first + int64(i)
		putDigits(r.b[r.ids[i]:r.ids[i]+seqWidth], seq)
		putDigits(r.b[r.user[i]:r.user[i]+seqWidth], seq%(r.accounts*5))
		putDigits(r.b[r.acc[i]:r.acc[i]+seqWidth], seq%r.accounts)
	}
}

// rawCodec sends a rawBatch as it is and decodes answers as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*rawBatch); ok {
		return r.b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

func (rawCodec) Name() string { return "proto" }
