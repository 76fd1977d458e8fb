// Package auth authenticates API keys and enforces per-method roles and
// workspace isolation on gRPC servers.
//
// An API key belongs to one workspace and carries one Role. Keys are kept in a
// Keyring file only as SHA-256 hashes: tokens are 32 random bytes, so a fast
// hash is enough and no slow KDF is needed. A Policy maps every gRPC method to
// the minimum Role it needs; the interceptors refuse everything else. Handlers
// then resolve the workspace they act on with Workspace, which refuses another
// tenant's workspace without saying whether it exists.
package auth

import (
	"context"
	"fmt"
	"strings"
)

// Role is what an API key may do.
type Role int

const (
	// RoleUnspecified is the zero value. A key never has it; in a Policy it
	// means "any authenticated key".
	RoleUnspecified Role = iota
	// RoleWrite may only send data (ingest).
	RoleWrite
	// RoleRead may only read.
	RoleRead
	// RoleAdmin may read, write and change configuration within its workspace.
	RoleAdmin
	// RoleService is held by internal peers (consumers). A cluster-wide
	// service key (bound to no workspace) may do everything, in any
	// workspace, but must always name the workspace; a service key bound to
	// a workspace is limited to it like any other key (Workspace) and may
	// not Subscribe.
	RoleService
)

// String returns the lower-case name used in key files, tokens and flags.
func (r Role) String() string {
	switch r {
	case RoleWrite:
		return "write"
	case RoleRead:
		return "read"
	case RoleAdmin:
		return "admin"
	case RoleService:
		return "service"
	default:
		return "unspecified"
	}
}

// ParseRole parses the name returned by Role.String (case-insensitive).
// "unspecified" is rejected because no key may carry it.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "write":
		return RoleWrite, nil
	case "read":
		return RoleRead, nil
	case "admin":
		return RoleAdmin, nil
	case "service":
		return RoleService, nil
	default:
		return RoleUnspecified, fmt.Errorf("parse role %q: want one of write, read, admin, service", s)
	}
}

// Allows reports whether a key with role have may call a method that needs
// role need. Write and read are not ordered: a write key cannot read and a
// read key cannot write. Admin covers both, and service covers everything.
func Allows(have, need Role) bool {
	switch have {
	case RoleService:
		return true
	case RoleAdmin:
		return need >= RoleUnspecified && need <= RoleAdmin
	case RoleWrite, RoleRead:
		return need == RoleUnspecified || need == have
	default:
		return false
	}
}

// Principal is the authenticated caller.
type Principal struct {
	// KeyID identifies the key (never the token itself); safe to log.
	KeyID string
	// Workspace the key belongs to; empty for a cluster-wide service key.
	Workspace string
	// Role of the key.
	Role Role
}

// ClusterWide reports whether p is a cluster-wide service key (bound to no
// workspace): it may act on every workspace and Subscribe to the logs.
// Only the suite's own processes should hold one; pkg/server counts and
// logs every call made with one.
func (p Principal) ClusterWide() bool { return p.Role == RoleService && p.Workspace == "" }

// Authenticator turns a bearer token into a Principal. It returns
// ErrUnknownKey when the token matches no key.
type Authenticator interface {
	Authenticate(token string) (Principal, error)
}

type principalKey struct{}

// NewContext returns ctx carrying p. The interceptors call it; handler tests
// that bypass the interceptors may call it too.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal put into ctx by the interceptors.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
