package testport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrBelowEphemeralRangeAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		a := Addr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < lowest || port >= highest {
			t.Fatalf("port %d outside %d-%d", port, lowest, highest)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("listen on handed-out %s: %v", a, err)
		}
		l.Close()
	}
}

func TestBaseSpanIsFree(t *testing.T) {
	tests := []struct{ span int }{{1}, {25}, {100}}
	for _, tt := range tests {
		base := Base(t, tt.span)
		for p := base + 1; p <= base+tt.span; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("span %d: port %d not free: %v", tt.span, p, err)
			}
			l.Close()
		}
	}
}
