package server

import (
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Keys adapts the shared keyring (or any auth.Authenticator) to the gateway.
type Keys struct {
	// Authenticator resolves tokens, normally an *auth.Keyring.
	Authenticator auth.Authenticator
}

// Authenticate resolves token; write, admin and service keys may send events.
func (k Keys) Authenticate(token string) (web.Key, error) {
	p, err := k.Authenticator.Authenticate(token)
	if err != nil {
		return web.Key{}, err
	}
	return web.Key{ID: p.KeyID, Workspace: p.Workspace, CanWrite: auth.Allows(p.Role, auth.RoleWrite)}, nil
}
