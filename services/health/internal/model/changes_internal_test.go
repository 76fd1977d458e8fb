package model

import (
	"fmt"
	"math/rand/v2"
	"testing"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/proto"
)

// TestChangesLinearEqualsMaps checks that Changes' linear lookups give
// what looking components up in maps gives (the path for large models),
// duplicate names included.
func TestChangesLinearEqualsMaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	list := func() []*healthv1.ComponentScore {
		n := rng.IntN(12)
		if n == 0 && rng.IntN(2) == 0 {
			return nil
		}
		out := make([]*healthv1.ComponentScore, n)
		for i := range out {
			out[i] = &healthv1.ComponentScore{Name: fmt.Sprintf("c%d", rng.IntN(10)), RawValue: float64(rng.IntN(4)),
				Points: float64(rng.IntN(3) * 50), Contribution: float64(rng.IntN(3)) * 2.5}
		}
		return out
	}
	for i := 0; i < 2000; i++ {
		prev, cur := list(), list()
		before := map[string]*healthv1.ComponentScore{}
		for _, p := range prev {
			before[p.GetName()] = p
		}
		seen := map[string]bool{}
		for _, c := range cur {
			seen[c.GetName()] = true
		}
		want := changes(prev, cur, "a", "b",
			func(name string) (*healthv1.ComponentScore, bool) { p, ok := before[name]; return p, ok },
			func(name string) bool { return seen[name] })
		got := Changes(prev, cur, "a", "b")
		if len(got) != len(want) {
			t.Fatalf("case %d: %d changes, want %d", i, len(got), len(want))
		}
		for k := range got {
			if !proto.Equal(got[k], want[k]) {
				t.Fatalf("case %d change %d: %v, want %v", i, k, got[k], want[k])
			}
		}
	}
}
