// Command pace sends HTTP GET requests at a fixed rate (open loop) and reports
// latency percentiles. Unlike a closed-loop tool such as wrk, a slow response
// does not delay the next request, so the percentiles are those a steady
// stream of callers would see (no coordinated omission).
//
//	pace -rate 1000 -duration 20s -H "Authorization: Bearer $KEY" URL [URL...]
//
// URLs are used round-robin.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	warmup := flag.Duration("warmup", 2*time.Second, "requests in this first period are not counted")
	var hdrs headers
	flag.Var(&hdrs, "H", "request header 'Name: value' (repeatable)")
	flag.Parse()
	urls := flag.Args()
	if len(urls) == 0 || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "usage: pace -rate N -duration D [-H 'K: V'] URL...")
		os.Exit(2)
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0},
	}
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*duration)
	defer cancel()

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      = map[string]int{}
		wg        sync.WaitGroup
	)
	start := time.Now()
	interval := time.Second / time.Duration(*rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		counted := due.Sub(start) >= *warmup
		wg.Add(1)
		go func(url string) {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			for _, h := range hdrs {
				k, v, _ := strings.Cut(h, ":")
				req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			// Latency is measured from when the request was due, not sent.
			resp, err := client.Do(req)
			lat := time.Since(due)
			outcome := ""
			if err != nil {
				outcome = "error"
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					outcome = fmt.Sprintf("http %d", resp.StatusCode)
				}
			}
			if !counted {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if outcome != "" {
				errs[outcome]++
				return
			}
			latencies = append(latencies, lat)
		}(urls[i%len(urls)])
	}
	wg.Wait()
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	fmt.Printf("rate %d/s for %s (after %s warm-up): %d ok, errors %v\n", *rate, *duration, *warmup, len(latencies), errs)
	fmt.Printf("latency p50 %s  p90 %s  p99 %s  max %s\n",
		pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), pct(1.0).Round(time.Microsecond))
}
