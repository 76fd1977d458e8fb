package model

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestAppendNumMatchesFormatFloat checks the integer fast path of appendNum
// against the plain float formatting it replaces.
func TestAppendNumMatchesFormatFloat(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), -0.00004, 0.00004, 0.00005, -0.00005, 1, -1, 2.5, 100, 33.33333,
		1e15 - 1, 1e15, -1e15, 1e15 + 0.5, 1e16, -1e16, 1e300, -1e300, math.MaxFloat64, 4503599627370496.5,
		9007199254740993, 0.99995, -0.99995, 12345.6789, 7e-5}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		switch i % 4 {
		case 0:
			vals = append(vals, float64(r.IntN(2000)-1000))
		case 1:
			vals = append(vals, (r.Float64()-0.5)*200)
		case 2:
			vals = append(vals, float64(r.IntN(1000))/4)
		default:
			vals = append(vals, math.Ldexp(r.Float64()-0.5, r.IntN(120)-60))
		}
	}
	for _, v := range vals {
		want := strconv.FormatFloat(round2x(v), 'f', -1, 64)
		if got := string(appendNum(nil, v)); got != want {
			t.Errorf("appendNum(%v) = %q, want %q", v, got, want)
		}
	}
}
