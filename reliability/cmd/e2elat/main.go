// Command e2elat measures how long an event takes to become a stage
// transition that a subscriber sees, in a running suite, under load.
//
// It sends Segment /v1/batch requests to the gateway at a fixed rate (open
// loop). Each batch carries one probe, the first event of an account nobody
// has seen, and background events for a fixed set of accounts, as the load
// generator sends them. A new account's first event places it in the
// journey: stages logs a transition whose trigger_message_id is the probe's
// message id. e2elat follows every partition of stages' Subscribe stream
// with a service key and reports, for the probes sent after the warm-up,
// the time from the gateway's acknowledgement (and from the send) until the
// transition arrived, as percentiles.
//
//	e2elat -gateway http://127.0.0.1:8080 -key $WRITE_KEY -stages 127.0.0.1:7102 \
//	  -service-key $SERVICE_KEY -rate 10000 -duration 60s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

type options struct {
	gateway, key, stages, serviceKey, run string
	rate, batch, accounts, partitions     int
	duration, warmup, settle              time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.gateway, "gateway", "http://127.0.0.1:8080", "gateway base URL")
	flag.StringVar(&o.key, "key", os.Getenv("CAIRN_WRITE_KEY"), "write key (Basic auth user name; default $CAIRN_WRITE_KEY)")
	flag.StringVar(&o.stages, "stages", "127.0.0.1:7102", "stages gRPC address")
	flag.StringVar(&o.serviceKey, "service-key", os.Getenv("CAIRN_SERVICE_KEY"), "key with the service role, for Subscribe (default $CAIRN_SERVICE_KEY)")
	flag.IntVar(&o.rate, "rate", 10000, "events per second, probes included")
	flag.IntVar(&o.batch, "batch", 100, "events per request; one of them is a probe")
	flag.IntVar(&o.accounts, "accounts", 1000, "accounts the background events are spread over")
	flag.IntVar(&o.partitions, "partitions", 64, "stages partitions to follow (partitions that do not exist are skipped)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "probes sent in this first period are not counted")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "after the load, wait this long at most for outstanding transitions")
	flag.StringVar(&o.run, "run", fmt.Sprint("lat", time.Now().UnixNano()), "prefix of probe message ids and account ids")
	flag.Parse()
	if o.key == "" || o.serviceKey == "" || o.rate <= 0 || o.batch <= 0 || o.rate < o.batch {
		fmt.Fprintln(os.Stderr, "e2elat: -key and -service-key are required, and -rate must be at least -batch")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "e2elat:", err)
		os.Exit(1)
	}
}

// probe is one probe event's timeline.
type probe struct {
	sent, acked, seen time.Time
	counted           bool
}

type tracker struct {
	mu     sync.Mutex
	probes map[string]*probe
	// early holds transitions that arrived before their request was even
	// recorded as sent (cannot happen) or acknowledged (can: the gateway's
	// answer may travel slower than the consumers).
	failed int
}

func (t *tracker) get(id string) *probe {
	p := t.probes[id]
	if p == nil {
		p = &probe{}
		t.probes[id] = p
	}
	return p
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := grpc.NewClient(o.stages, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial stages: %w", err)
	}
	defer conn.Close()
	t := &tracker{probes: map[string]*probe{}}
	prefix := o.run + "-p-"
	sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+o.serviceKey)
	client := stagesv1.NewStagesServiceClient(conn)
	followed := make(chan error, o.partitions)
	for p := range o.partitions {
		go func() { followed <- follow(sctx, client, uint32(p), prefix, t) }()
	}
	// Give the subscriptions a moment to catch up with the existing log,
	// so that the first probes are not measured against a replay.
	time.Sleep(2 * time.Second)
	select {
	case err := <-followed:
		if err != nil && status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.OutOfRange {
			return fmt.Errorf("subscribe: %w", err)
		}
	default:
	}

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	interval := time.Duration(float64(time.Second) * float64(o.batch) / float64(o.rate))
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	for n := 0; ; n++ {
		due := start.Add(time.Duration(n) * interval)
		if due.Sub(start) >= o.duration {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		id := fmt.Sprintf("%s%d", prefix, n)
		body := batchBody(o, n, id)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.mu.Lock()
			p := t.get(id)
			p.sent = due
			p.counted = due.Sub(start) >= o.warmup
			t.mu.Unlock()
			ok := send(hc, o, body)
			t.mu.Lock()
			if ok {
				p.acked = time.Now()
			} else {
				t.failed++
			}
			t.mu.Unlock()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(o.settle)
	for time.Now().Before(deadline) {
		if outstanding(t) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	report(o, t, time.Since(start))
	return nil
}

func outstanding(t *tracker) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.probes {
		if !p.acked.IsZero() && p.seen.IsZero() {
			n++
		}
	}
	return n
}

// follow records the arrival of every transition a probe triggered on
// stages partition p, until ctx ends or the partition turns out not to exist.
func follow(ctx context.Context, client stagesv1.StagesServiceClient, p uint32, prefix string, t *tracker) error {
	stream, err := client.Subscribe(ctx, &stagesv1.SubscribeRequest{Partition: p, FromOffset: 1})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		for _, r := range resp.GetRecords() {
			id := r.GetTransition().GetTriggerMessageId()
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			t.mu.Lock()
			if pr := t.get(id); pr.seen.IsZero() {
				pr.seen = now
			}
			t.mu.Unlock()
		}
	}
}

func batchBody(o options, n int, id string) []byte {
	var b bytes.Buffer
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	fmt.Fprintf(&b, `{"batch":[{"type":"track","messageId":%q,"userId":"%s-u-%d","event":"report_created","timestamp":%q,"properties":{"plan":"pro","rows":12},"context":{"groupId":"%s-a-%d"}}`,
		id, o.run, n, ts, o.run, n)
	for i := 1; i < o.batch; i++ {
		seq := n*o.batch + i
		fmt.Fprintf(&b, `,{"type":"track","messageId":"%s-b-%d","userId":"user-%d","event":"report_created","timestamp":%q,"properties":{"plan":"pro","rows":12,"path":"/reports/new"},"context":{"groupId":"acct-%d"}}`,
			o.run, seq, seq%(o.accounts*5), ts, seq%o.accounts)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func send(hc *http.Client, o options, body []byte) bool {
	req, err := http.NewRequest(http.MethodPost, o.gateway+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.SetBasicAuth(o.key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func report(o options, t *tracker, elapsed time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fromAck, fromSend []time.Duration
	var counted, acked, seen, early int
	for _, p := range t.probes {
		if !p.counted || p.sent.IsZero() {
			continue
		}
		counted++
		if p.acked.IsZero() {
			continue
		}
		acked++
		if p.seen.IsZero() {
			continue
		}
		seen++
		fromSend = append(fromSend, p.seen.Sub(p.sent))
		d := p.seen.Sub(p.acked)
		if d < 0 {
			early++ // seen before the gateway's answer arrived
			d = 0
		}
		fromAck = append(fromAck, d)
	}
	fmt.Printf("sent %d requests in %.1f s (%d events/s offered, %d per request); failed requests %d\n",
		len(t.probes), elapsed.Seconds(), o.rate, o.batch, t.failed)
	fmt.Printf("probes after the %s warm-up: %d sent, %d acknowledged, %d transitions seen (%d before their acknowledgement arrived), %d missing\n",
		o.warmup, counted, acked, seen, early, acked-seen)
	fmt.Printf("ack -> transition:  %s\n", percentiles(fromAck))
	fmt.Printf("send -> transition: %s\n", percentiles(fromSend))
}

func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s (n=%d)", ms(at(0.5)), ms(at(0.9)), ms(at(0.99)), ms(ds[len(ds)-1]), len(ds))
}
