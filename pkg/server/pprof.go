package server

import (
	"net/http"
	"net/http/pprof"
)

// MountPprof serves net/http/pprof under /debug/pprof/ on mux. Services
// mount it on their metrics listener when -pprof is set; the gateway, which
// has its own listeners, calls it the same way.
func MountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
