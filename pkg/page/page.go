// Package page implements the paging convention shared by every list RPC:
// cairn.common.v1.PageRequest in, PageResponse out, with an opaque token that
// carries the last store key returned.
//
// Tokens are base64url of a version byte followed by the key. They are not
// signed: a handler must still scope its scan to the caller's workspace, so a
// forged token can only move the cursor within data the caller may read.
package page

import (
	"encoding/base64"
	"errors"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

const (
	// DefaultSize is used when page_size is 0.
	DefaultSize = 50
	// MaxSize caps page_size.
	MaxSize = 1000
	// MaxTokenLen bounds the page_token accepted, in characters.
	MaxTokenLen = 2048
)

// tokenVersion prefixes every token so that the format can change later.
const tokenVersion byte = 1

// ErrInvalidToken is matched (errors.Is) by the errors of DecodeToken and
// Bounds for a bad page_token.
var ErrInvalidToken = errors.New("invalid page token")

// Size returns the page size to use: DefaultSize for 0 or a negative value,
// at most MaxSize.
func Size(p *commonv1.PageRequest) int {
	n := int(p.GetPageSize())
	switch {
	case n <= 0:
		return DefaultSize
	case n > MaxSize:
		return MaxSize
	default:
		return n
	}
}

// EncodeToken returns the token for a page that starts after key. An empty
// key gives an empty token, which means "no more pages".
func EncodeToken(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	buf := make([]byte, 0, len(key)+1)
	buf = append(buf, tokenVersion)
	buf = append(buf, key...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// DecodeToken returns the key carried by tok; an empty tok gives a nil key.
// A malformed token is an InvalidArgument status error naming
// page.page_token that also matches ErrInvalidToken.
func DecodeToken(tok string) ([]byte, error) {
	if tok == "" {
		return nil, nil
	}
	if len(tok) > MaxTokenLen {
		return nil, invalid("page.page_token: longer than 2048 characters")
	}
	buf, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, invalid("page.page_token: malformed; pass next_page_token from the previous response unchanged")
	}
	if len(buf) < 2 || buf[0] != tokenVersion {
		return nil, invalid("page.page_token: malformed; pass next_page_token from the previous response unchanged")
	}
	return buf[1:], nil
}

// Bounds validates p and returns the page size and the key to start after
// (nil for the first page).
func Bounds(p *commonv1.PageRequest) (size int, after []byte, err error) {
	if p.GetPageSize() < 0 {
		return 0, nil, invalid("page.page_size: must not be negative")
	}
	after, err = DecodeToken(p.GetPageToken())
	if err != nil {
		return 0, nil, err
	}
	return Size(p), after, nil
}

// Response builds the PageResponse for a page whose last key is last, when
// more items follow; total is -1 when not cheaply known.
func Response(last []byte, more bool, total int64) *commonv1.PageResponse {
	r := &commonv1.PageResponse{TotalSize: total}
	if more {
		r.NextPageToken = EncodeToken(last)
	}
	return r
}

// inputError is an InvalidArgument status error that matches ErrInvalidToken.
type inputError struct{ msg string }

func invalid(msg string) error { return &inputError{msg: msg} }

func (e *inputError) Error() string { return e.msg }

// GRPCStatus lets status.FromError and status.Code see InvalidArgument.
func (e *inputError) GRPCStatus() *status.Status { return status.New(codes.InvalidArgument, e.msg) }

// Is makes errors.Is(err, ErrInvalidToken) true.
func (e *inputError) Is(target error) bool { return target == ErrInvalidToken }

// Collect gathers one page from a walk over items in key order: walk
// calls visit for each item with its key until visit returns false; the
// items keep accepts are kept, up to size. It returns them, the key of the
// last one kept when more remain (the next page starts after it; nil on
// the last page), and whether more remain.
func Collect[T any](size int, keep func(T) bool, walk func(visit func(key []byte, item T) (bool, error)) error) (items []T, last []byte, more bool, err error) {
	err = walk(func(key []byte, item T) (bool, error) {
		if !keep(item) {
			return true, nil
		}
		if len(items) == size {
			more = true
			return false, nil
		}
		items, last = append(items, item), slices.Clone(key)
		return true, nil
	})
	if !more {
		last = nil
	}
	return items, last, more, err
}
