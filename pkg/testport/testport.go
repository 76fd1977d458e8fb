// Package testport hands tests loopback ports for servers they start
// themselves, including servers in child processes that bind later.
//
// Ports come from below the kernel's ephemeral range (32768-60999 on
// Linux by default). A port found through "127.0.0.1:0" is an ephemeral
// port: once the probe closes it, any outgoing connection on the machine
// may take it before the child process binds, which made whole-suite
// tests fail with "address already in use" when several ran at once.
// Below that range only another listener can take the port, and every
// harness in this repository probes through this package, which spreads
// its choices by process.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

const (
	lowest  = 12000
	highest = 32000 // exclusive; the ephemeral range starts at 32768
)

var (
	mu     sync.Mutex
	handed = map[int]bool{} // ports this process already gave out
)

// Addr returns "127.0.0.1:port" for a port that was free a moment ago
// and that this process has not handed out before.
func Addr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", Base(t, 1)+1)
}

// Base returns a base such that base+1 .. base+span were all free a
// moment ago, for servers that derive their ports from one base (cairn
// run --base-port).
func Base(t testing.TB, span int) int {
	t.Helper()
	if span < 1 || span > 1000 {
		t.Fatalf("testport: span %d out of range 1-1000", span)
	}
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		base := lowest + rand.IntN(highest-lowest-span-1)
		if free(base, span) {
			for p := base + 1; p <= base+span; p++ {
				handed[p] = true
			}
			return base
		}
	}
	t.Fatalf("testport: no %d free ports in %d-%d", span, lowest, highest)
	return 0
}

func free(base, span int) bool {
	for p := base + 1; p <= base+span; p++ {
		if handed[p] {
			return false
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}
