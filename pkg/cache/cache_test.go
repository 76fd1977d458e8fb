package cache

import (
	"fmt"
	"testing"
)

func TestMapBounds(t *testing.T) {
	tests := []struct {
		name        string
		limit, puts int
		wantEntries int
	}{
		{"under the limit", 100, 3, 3},
		{"at the limit", 90, 3, 3},
		{"past the limit evicts", 100, 10, 3},
		{"nothing fits", 29, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[string, []byte](tt.limit, func(b []byte) int { return len(b) })
			for i := range tt.puts {
				c.Put(fmt.Sprint(i), make([]byte, 30))
				if _, size := c.Len(); size > tt.limit {
					t.Fatalf("after %d puts: size %d over the limit %d", i+1, size, tt.limit)
				}
			}
			if n, size := c.Len(); n != tt.wantEntries || size != 30*n {
				t.Fatalf("%d entries of size %d, want %d entries of 30", n, size, tt.wantEntries)
			}
		})
	}
}

func TestMapTakeRemoves(t *testing.T) {
	c := New[string, []byte](100, func(b []byte) int { return len(b) })
	c.Put("a", make([]byte, 10))
	c.Put("a", make([]byte, 20)) // replaces, not adds
	if n, size := c.Len(); n != 1 || size != 20 {
		t.Fatalf("%d entries, size %d after replacing", n, size)
	}
	if v, ok := c.Take("a"); !ok || len(v) != 20 {
		t.Fatalf("Take = %d bytes, %v", len(v), ok)
	}
	if _, ok := c.Take("a"); ok {
		t.Fatal("an entry was taken twice")
	}
	if n, size := c.Len(); n != 0 || size != 0 {
		t.Fatalf("%d entries, size %d after taking the only one", n, size)
	}
}
