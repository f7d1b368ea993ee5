package api

import (
	"net/http"
	"strings"

	"github.com/edgeseal/edgeseal/archive/tlog"
)

// LogPrefix is where the archive log is served as C2SP tlog-tiles:
// LogPrefix+"checkpoint", LogPrefix+"tile/<L>/<N>[.p/<W>]" and
// LogPrefix+"tile/entries/<N>[.p/<W>]".
const LogPrefix = "/log/"

// entriesPrefix is the path of the entry bundles under the server.
const entriesPrefix = LogPrefix + "tile/entries/"

// logRoutes serves the archive log read-only at LogPrefix (tlog.Handler)
// so that standard tlog-tiles clients, monitors and witnesses follow it.
// The signed checkpoint and the hash tiles are public, without a session
// and not access-logged: they disclose hashes only. The entry bundles
// name devices and bundle digests: they need an auditor's or operator's
// session and each read is access-logged ("log.entries", its path).
func (s *Server) logRoutes() {
	h := http.StripPrefix(strings.TrimSuffix(LogPrefix, "/"), tlog.Handler(s.a.LogTiles(), s.lg))
	s.mux.Handle(LogPrefix, publicTiles{h})
	s.Handle(entriesPrefix, "log.entries", auditorOrOps, h)
}

// publicTiles serves the log without a session, except for entry
// bundles, which it never serves (their route is the authenticated one;
// a path that reaches here naming them anyway, in another spelling, is
// 404).
type publicTiles struct{ h http.Handler }

func (p publicTiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawPath != "" || strings.HasPrefix(r.URL.Path, strings.TrimSuffix(entriesPrefix, "/")) {
		http.NotFound(w, r)
		return
	}
	p.h.ServeHTTP(w, r)
}
