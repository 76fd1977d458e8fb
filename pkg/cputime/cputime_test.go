package cputime

import (
	"runtime"
	"testing"
)

func TestProcessGrowsWithWork(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no CPU time on this platform")
	}
	before := Process()
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	if after := Process(); after <= before || x == 0 {
		t.Fatalf("CPU time %v then %v after a busy loop", before, after)
	}
}
