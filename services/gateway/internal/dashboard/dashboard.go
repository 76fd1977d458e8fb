// Package dashboard serves the gateway's single-page dashboard and API docs
// page. The assets are plain HTML, CSS and JavaScript embedded in the binary,
// so no JavaScript toolchain is needed to build or run Cairn.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"google.golang.org/grpc/codes"

	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

//go:embed assets
var assets embed.FS

// csp keeps the page to its own scripts and its own API; inline styles are
// allowed because the charts size SVG elements through style attributes.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves "/" (the dashboard), "/docs" (the API docs page) and the
// files under "/assets/".
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// The embedded tree always has an assets directory; this is unreachable.
		return http.NotFoundHandler()
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			web.SetRoute(r.Context(), "unmatched")
			web.WriteStatus(w, r, codes.Unimplemented, "method not allowed")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch p := path.Clean(r.URL.Path); {
		case p == "/" || p == "/index.html":
			web.SetRoute(r.Context(), "/")
			http.ServeFileFS(w, r, sub, "index.html")
		case p == "/docs":
			web.SetRoute(r.Context(), "/docs")
			http.ServeFileFS(w, r, sub, "docs.html")
		case path.Dir(p) == "/assets":
			web.SetRoute(r.Context(), "/assets")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + path.Base(p)
			files.ServeHTTP(w, r2)
		default:
			web.SetRoute(r.Context(), "unmatched")
			web.WriteStatus(w, r, codes.NotFound, "no such page")
		}
	})
}
