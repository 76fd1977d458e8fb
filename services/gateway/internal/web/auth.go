package web

import "strings"

// Key is what the gateway needs to know about an authenticated API key.
type Key struct {
	// ID identifies the key without revealing it; rate limits are kept per ID.
	ID string
	// Workspace the key belongs to.
	Workspace string
	// CanWrite says the key may send events (write, admin and service roles).
	CanWrite bool
}

// Authenticator resolves an API key. The gateway's main adapts the shared
// keyring to it; tests use fakes.
type Authenticator interface {
	Authenticate(token string) (Key, error)
}

// BearerToken returns the token of an "Authorization: Bearer" header value.
func BearerToken(header string) (string, bool) {
	const prefix = "bearer "
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(header[len(prefix):])
	return tok, tok != ""
}
