package server

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods/methodstest"
)

// tenantRequest builds a call of r asking for workspace ws: its path
// parameters filled with placeholders, the workspace in the JSON body
// when the body is the whole request, else in the query.
func (r restRoute) tenantRequest(ws string) (verb, target, body string) {
	target = pathParam.ReplaceAllStringFunc(r.method.REST.Path, func(p string) string {
		if fd := fieldOf(r.input, p[1:len(p)-1]); fd != nil && fd.Kind() == protoreflect.StringKind {
			return "a1"
		}
		return "1"
	})
	switch r.method.REST.Body {
	case "*":
		body = fmt.Sprintf(`{"workspace": %q}`, ws)
	case "":
		target += "?workspace=" + url.QueryEscape(ws)
	default:
		body = "{}"
		target += "?workspace=" + url.QueryEscape(ws)
	}
	return r.method.REST.Verb, target, body
}

// TestTenantsREST runs the tenant table over every REST route: the
// gateway, with its real key check, in front of upstreams that authorize
// as the services do (methodstest.Upstream). A key bound to workspace
// acme asking for workspace rival gets 403 whatever its role, with a body
// naming neither workspace; a key of a role the method allows gets past
// authorization for its own workspace (and the cluster-wide service key
// for any); any other role gets 403.
func TestTenantsREST(t *testing.T) {
	keys, tok := methodstest.StaticKeys()
	up := methodstest.Upstream(t, keys)
	h, err := New(t.Context(), Config{
		Upstreams: Upstreams{Ingestion: up, Stages: up, Health: up, Routing: up, Plays: up},
		Auth:      Keys{Authenticator: keys},
	})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		name, token string
		role        auth.Role
		bound       bool
	}
	all := []key{
		{"read", tok.Read, auth.RoleRead, true},
		{"write", tok.Write, auth.RoleWrite, true},
		{"admin", tok.Admin, auth.RoleAdmin, true},
		{"service", tok.Service, auth.RoleService, true},
		{"cluster-wide service", tok.ClusterWide, auth.RoleService, false},
	}
	for _, r := range restRoutes(t) {
		t.Run(r.method.Name, func(t *testing.T) {
			for _, k := range all {
				for _, ws := range []string{methodstest.Rival, methodstest.Home} {
					verb, target, body := r.tenantRequest(ws)
					req := httptest.NewRequest(verb, target, strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+k.token)
					if body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					allowed := auth.Allows(k.role, r.method.Role)
					switch {
					case !allowed || (k.bound && ws == methodstest.Rival):
						if w.Code != 403 {
							t.Errorf("%s key, workspace %s: %s %s: status %d, want 403: %s", k.name, ws, verb, target, w.Code, w.Body)
						}
						if b := w.Body.String(); strings.Contains(b, methodstest.Rival) || strings.Contains(b, methodstest.Home) {
							t.Errorf("%s key, workspace %s: body %s names a workspace", k.name, ws, b)
						}
					case w.Code == 401 || w.Code == 403 || w.Code >= 500:
						t.Errorf("%s key, workspace %s: %s %s: status %d, want past authorization: %s", k.name, ws, verb, target, w.Code, w.Body)
					}
				}
			}
		})
	}
}
