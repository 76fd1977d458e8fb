package app

import (
	"testing"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

func TestAccountCacheBounds(t *testing.T) {
	entry := func(n int) *cachedAccount { return &cachedAccount{stored: store.Stored{Agg: make([]byte, n)}} }
	one := entry(100).bytes()
	tests := []struct {
		name  string
		limit int
		puts  int
		want  int // entries left
	}{
		{"disabled", 0, 3, 0},
		{"room for all", 10 * one, 5, 5},
		{"evicts past the limit", 3 * one, 10, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAccountCache(tt.limit)
			for i := 0; i < tt.puts; i++ {
				c.put([2]string{"w", string(rune('a' + i))}, entry(100))
			}
			if len(c.m) != tt.want || c.size != tt.want*one || c.size > tt.limit {
				t.Fatalf("%d entries, size %d; want %d entries of %d within %d", len(c.m), c.size, tt.want, one, tt.limit)
			}
			// Taking an entry removes it; a second take finds none.
			for k := range c.m {
				if c.take(k) == nil || c.take(k) != nil || c.size != (tt.want-1)*one {
					t.Fatalf("take %v: size %d", k, c.size)
				}
				break
			}
		})
	}
	t.Run("replacing an entry keeps one", func(t *testing.T) {
		c := newAccountCache(10 * one)
		c.put([2]string{"w", "a"}, entry(100))
		c.put([2]string{"w", "a"}, entry(100))
		if len(c.m) != 1 || c.size != one {
			t.Fatalf("%d entries, size %d", len(c.m), c.size)
		}
	})
}
