package jsonpos

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPath(t *testing.T) {
	tests := []struct {
		doc  string
		at   string // the offset is where this substring starts
		max  int
		want string
	}{
		{`{"a":1}`, `1`, 0, "a"},
		{"{\"a\":1,\"b\":[true,{\"c\":\"x\xffy\"}]}", "\xff", 0, "b[1].c"},
		{"{\"a\":1,\"b\":[true,{\"c\":\"x\xffy\"}]}", "\xff", 2, "b[1]"},
		{`{"batch":[{"type":"track"},{"properties":{"plan":1e400}}]}`, `1e400`, 0, "batch[1].properties.plan"},
		{`{"batch":[{},{"properties":{"plan":1e400}}]}`, `1e400`, 3, "batch[1].properties"},
		{"{\"properties\":{\"k\xff\":1}}", "\xff", 0, "properties.k\uFFFD"},
		{`{"a\"b":[1,2,3]}`, `3`, 0, `a"b[2]`},
		{`{"\u0041":{"b":0}}`, `0}`, 0, "A.b"},
		{`{"a":{"b":1},"c":2}`, `2`, 0, "c"},
		{`{"a":[[1,2],[3,4]]}`, `4`, 0, "a[1][1]"},
		{`{"a":1,`, `,`, 0, "a"},
		{`[1,2,3]`, `3`, 0, "[2]"},
		{`{"a":1}`, `{`, 0, ""},
		{`{"":{"":"x"}}`, `x`, 0, `[""][""]`},
		{`{"a":"b,c","d":"}"}`, `"}"`, 0, "d"},
	}
	for _, tc := range tests {
		off := strings.Index(tc.doc, tc.at)
		if off < 0 {
			t.Fatalf("%q not in %q", tc.at, tc.doc)
		}
		if got := Path([]byte(tc.doc), off, tc.max); got != tc.want {
			t.Errorf("Path(%q, %d, %d) = %q, want %q", tc.doc, off, tc.max, got, tc.want)
		}
	}
}

func TestOffset(t *testing.T) {
	doc := []byte("{\n  \"é\": \"x\",\n  \"b\": 1e400\n}")
	tests := []struct{ line, col, want int }{
		{1, 1, 0},
		{2, 3, 4},
		{2, 6, 8}, // after the two-byte é, counted as one column
		{3, 8, strings.Index(string(doc), "1e400")},
		{9, 9, len(doc)},
	}
	for _, tc := range tests {
		if got := Offset(doc, tc.line, tc.col); got != tc.want {
			t.Errorf("Offset(%d:%d) = %d, want %d", tc.line, tc.col, got, tc.want)
		}
	}
}

// FuzzPath: any bytes and offset give a valid UTF-8 path without a
// panic, and a limit keeps a prefix of the whole path.
func FuzzPath(f *testing.F) {
	f.Add([]byte("{\"batch\":[{\"properties\":{\"a\":[1,{\"b\":\"\xff\"}]}}]}"), 40, 2)
	f.Add([]byte(`{"a\`), 4, 0)
	f.Add([]byte(`[[[[[[`), 5, 3)
	f.Fuzz(func(t *testing.T, doc []byte, off, max int) {
		if off < 0 {
			off = -off
		}
		all := Path(doc, off, 0)
		got := Path(doc, off, max)
		if !utf8.ValidString(all) || !utf8.ValidString(got) {
			t.Fatalf("Path = %q, not valid UTF-8", all)
		}
		if !strings.HasPrefix(all, got) {
			t.Fatalf("Path(max %d) = %q is not a prefix of %q", max, got, all)
		}
	})
}
