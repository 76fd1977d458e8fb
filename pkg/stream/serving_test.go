package stream

import "testing"

func TestServingLag(t *testing.T) {
	heads := map[uint32]uint64{0: 100, 1: 50}
	head := func(p uint32) uint64 { return heads[p] }
	var s Serving
	if got := s.Lag(head); got != 0 {
		t.Fatalf("lag with no calls = %d, want 0", got)
	}
	a := s.Track(0, 90)
	b := s.Track(1, 10)
	if got := s.Lag(head); got != 40 {
		t.Fatalf("lag = %d, want 40 (partition 1: 50 - 10)", got)
	}
	b.Sent(45)
	b.Sent(20) // progress never goes back
	if got := s.Lag(head); got != 10 {
		t.Fatalf("lag = %d, want 10 (partition 0: 100 - 90)", got)
	}
	a.Done()
	if got := s.Lag(head); got != 5 {
		t.Fatalf("lag after the first call ended = %d, want 5", got)
	}
	b.Sent(60) // past the head a reader has seen: no lag, not a wrap-around
	if got := s.Lag(head); got != 0 {
		t.Fatalf("lag = %d, want 0", got)
	}
	b.Done()
}
