package admit

import (
	"fmt"
	"testing"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// BenchmarkAcquireRelease is the cost admission adds to a request that
// finds room: per key and overall bounds on requests and bytes, eight keys,
// callers in parallel.
func BenchmarkAcquireRelease(b *testing.B) {
	c := New("bench", Limits{Requests: 1 << 20, Bytes: 1 << 40, KeyRequests: 1 << 20, KeyBytes: 1 << 40, Target: 1 << 40}, clock.Real{})
	var keys [8]string
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tk, err := c.Acquire(b.Context(), keys[i%len(keys)], 20_000)
			if err != nil {
				b.Fatal(err)
			}
			tk.Release()
			i++
		}
	})
}
