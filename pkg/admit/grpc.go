package admit

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/tap"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// Tap admits gRPC calls when their stream opens, before any message is
// read: a refused call costs its headers only, so a flood of large
// requests is shed without being buffered. The call holds its ticket until
// its stream ends (for a streaming call, its whole life), and releases it
// then.
//
// gRPC runs the tap on the connection's reader, so it cannot wait: a call
// over a bound is shed at once, with ResourceExhausted and RetryInfo. Bytes
// are not known yet at this point; callers that bound bytes do so in the
// handler with Controller.Acquire, which may wait.
type Tap struct {
	// Class returns the controller that admits method (a full method name,
	// "/pkg.Service/Method"); nil lets the call through unbounded (health
	// checks, reflection).
	Class func(method string) *Controller
	// Key names the caller from the request's metadata; "" counts the call
	// against the overall bounds only.
	Key func(md metadata.MD) string
}

// ServerOption installs the tap on a grpc.Server (only one tap can be).
func (t Tap) ServerOption() grpc.ServerOption { return grpc.InTapHandle(t.Handle) }

// Handle is the tap.ServerInHandle.
func (t Tap) Handle(ctx context.Context, info *tap.Info) (context.Context, error) {
	c := t.Class(info.FullMethodName)
	if c == nil {
		return ctx, nil
	}
	key := ""
	if t.Key != nil {
		key = t.Key(info.Header)
	}
	ticket, err := c.TryAcquire(key, 0)
	if err != nil {
		return nil, err
	}
	// The stream's context ends when the call does, whichever way.
	context.AfterFunc(ctx, ticket.Release)
	return ctx, nil
}

// BearerKey returns a Tap.Key that names the caller by the id of its API key
// in a, read from the "authorization: Bearer" metadata; an unknown or
// missing key is "" (the call is refused by authentication later, and
// meanwhile counts against the overall bounds).
func BearerKey(a auth.Authenticator) func(metadata.MD) string {
	return func(md metadata.MD) string {
		vals := md.Get("authorization")
		if len(vals) != 1 {
			return ""
		}
		const scheme = "bearer "
		v := vals[0]
		if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
			return ""
		}
		p, err := a.Authenticate(strings.TrimSpace(v[len(scheme):]))
		if err != nil {
			return ""
		}
		return p.KeyID
	}
}

// KeyOf is the API key id of the caller authenticated in ctx (pkg/auth's
// interceptors put it there), or "".
func KeyOf(ctx context.Context) string {
	p, _ := auth.FromContext(ctx)
	return p.KeyID
}
