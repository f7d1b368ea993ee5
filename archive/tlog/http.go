package tlog

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Source is what Handler serves: the published checkpoint and the tiles
// and entry bundles at their exact paths (fs.ErrNotExist when missing).
// *Tessera and the journal logs are.
type Source interface {
	Checkpoint(ctx context.Context) (Checkpoint, error)
	ReadTile(ctx context.Context, level, index uint64, width uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, width uint8) ([]byte, error)
}

// Handler serves src read-only at the C2SP tlog-tiles paths under the
// handler's root (mount it with http.StripPrefix): GET and HEAD of
// /checkpoint, /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>]. Only
// resources the published checkpoint commits to are served; anything
// else, including a path not in canonical form, a folder or a file that
// is not a regular one, is 404. Full tiles and bundles are immutable and
// cached as such; the checkpoint and partial tiles are not cached.
func Handler(src Source, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return &handler{src: src, log: log}
}

type handler struct {
	src Source
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/")
	if !ok || r.URL.RawPath != "" {
		http.NotFound(w, r)
		return
	}
	res, ok := parsePath(p)
	if !ok {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	cp, err := h.src.Checkpoint(ctx)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	if !res.committed(cp.Size) {
		http.NotFound(w, r)
		return
	}
	var body []byte
	ctype, cache := "application/octet-stream", "no-cache"
	switch res.kind {
	case resCheckpoint:
		body, ctype = cp.Note, "text/plain; charset=utf-8"
	case resTile:
		body, err = h.src.ReadTile(ctx, res.level, res.index, res.width)
	case resEntries:
		body, err = h.src.ReadEntryBundle(ctx, res.index, res.width)
	}
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	if res.kind != resCheckpoint && res.width == 0 {
		cache = "public, max-age=31536000, immutable"
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("Cache-Control", cache)
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// fail answers 404 for a missing or refused resource (logged when
// refused: a link or a folder where a file belongs is worth a look), 500
// otherwise.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, p string, err error) {
	var nr *NotRegularError
	var tl *TooLargeError
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNoCheckpoint):
		http.NotFound(w, r)
	case errors.As(err, &nr), errors.As(err, &tl):
		h.log.Warn("tlog: refused to serve", "path", p, "err", err)
		http.NotFound(w, r)
	default:
		h.log.Error("tlog: serve", "path", p, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}
