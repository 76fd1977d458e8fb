package page

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		req  *commonv1.PageRequest
		want int
	}{
		{name: "nil request", req: nil, want: DefaultSize},
		{name: "zero", req: &commonv1.PageRequest{}, want: DefaultSize},
		{name: "negative", req: &commonv1.PageRequest{PageSize: -3}, want: DefaultSize},
		{name: "one", req: &commonv1.PageRequest{PageSize: 1}, want: 1},
		{name: "max", req: &commonv1.PageRequest{PageSize: MaxSize}, want: MaxSize},
		{name: "over max", req: &commonv1.PageRequest{PageSize: MaxSize + 1}, want: MaxSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Size(tc.req); got != tc.want {
				t.Fatalf("Size = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
	}{
		{name: "text key", key: []byte("acme\x00account-1")},
		{name: "binary key", key: []byte{0, 0, 0, 0, 0, 0, 0, 7}},
		{name: "single byte", key: []byte{0xff}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := EncodeToken(tc.key)
			if tok == "" || strings.ContainsAny(tok, "+/=") {
				t.Fatalf("token %q is not URL-safe", tok)
			}
			got, err := DecodeToken(tok)
			if err != nil || !bytes.Equal(got, tc.key) {
				t.Fatalf("DecodeToken = %q, %v; want %q", got, err, tc.key)
			}
		})
	}
	if EncodeToken(nil) != "" {
		t.Fatal("EncodeToken(nil) must be empty: no next page")
	}
}

func TestBounds(t *testing.T) {
	tests := []struct {
		name  string
		req   *commonv1.PageRequest
		size  int
		after []byte
		err   string
	}{
		{name: "first page", req: &commonv1.PageRequest{PageSize: 10}, size: 10},
		{name: "next page", req: &commonv1.PageRequest{PageToken: EncodeToken([]byte("k"))}, size: DefaultSize, after: []byte("k")},
		{name: "negative size", req: &commonv1.PageRequest{PageSize: -1}, err: "page.page_size: must not be negative"},
		{name: "not base64", req: &commonv1.PageRequest{PageToken: "!!!"}, err: "page.page_token: malformed"},
		{name: "wrong version", req: &commonv1.PageRequest{PageToken: "Ams"}, err: "page.page_token: malformed"},
		{name: "version only", req: &commonv1.PageRequest{PageToken: "AQ"}, err: "page.page_token: malformed"},
		{name: "too long", req: &commonv1.PageRequest{PageToken: strings.Repeat("A", MaxTokenLen+1)}, err: "page.page_token: longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size, after, err := Bounds(tc.req)
			if tc.err != "" {
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.err) {
					t.Fatalf("err = %v, want InvalidArgument containing %q", err, tc.err)
				}
				if strings.HasPrefix(tc.err, "page.page_token") && !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("errors.Is(%v, ErrInvalidToken) = false", err)
				}
				return
			}
			if err != nil || size != tc.size || !bytes.Equal(after, tc.after) {
				t.Fatalf("Bounds = %d, %q, %v; want %d, %q", size, after, err, tc.size, tc.after)
			}
		})
	}
}

func TestResponse(t *testing.T) {
	if r := Response([]byte("k"), false, 3); r.GetNextPageToken() != "" || r.GetTotalSize() != 3 {
		t.Fatalf("last page: %v", r)
	}
	r := Response([]byte("k"), true, -1)
	if key, err := DecodeToken(r.GetNextPageToken()); err != nil || string(key) != "k" || r.GetTotalSize() != -1 {
		t.Fatalf("more pages: %v (%q, %v)", r, key, err)
	}
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range []string{"", "AQ", "AWs", "!!!", EncodeToken([]byte("acme\x00a")), strings.Repeat("A", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		key, err := DecodeToken(tok)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("DecodeToken(%q) error %v is not InvalidArgument/ErrInvalidToken", tok, err)
			}
			return
		}
		if tok != "" && EncodeToken(key) != tok {
			// Non-canonical base64 may decode; it must still yield a valid key.
			if _, err := DecodeToken(EncodeToken(key)); err != nil {
				t.Fatalf("re-encoded key does not decode: %v", err)
			}
		}
	})
}

func TestCollect(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e"}
	walk := func(from int) func(func([]byte, string) (bool, error)) error {
		return func(visit func([]byte, string) (bool, error)) error {
			for _, k := range keys[from:] {
				if more, err := visit([]byte(k), k); err != nil || !more {
					return err
				}
			}
			return nil
		}
	}
	notC := func(s string) bool { return s != "c" }
	for _, tc := range []struct {
		size, from int
		items      string
		last       string
		more       bool
	}{
		{2, 0, "[a b]", "b", true},
		{2, 2, "[d e]", "", false},
		{4, 0, "[a b d e]", "", false},
		{3, 0, "[a b d]", "d", true},
	} {
		items, last, more, err := Collect(tc.size, notC, walk(tc.from))
		if err != nil || fmt.Sprint(items) != tc.items || string(last) != tc.last || more != tc.more {
			t.Errorf("Collect(%d from %d) = %v %q %t %v; want %s %q %t", tc.size, tc.from, items, last, more, err, tc.items, tc.last, tc.more)
		}
	}
}
