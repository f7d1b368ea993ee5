package readclient

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// Bounds of an evidence pack read from the API (a pack the archive
// serves holds at most 500 exports and 2 GiB of files).
const (
	MaxPackFiles = 500*64 + 64
	MaxPackBytes = 2<<30 + 64<<20
	MaxProof     = (1<<30)/3*4 + 64<<20 // a proof: its payload (at most 1 GiB) in base64, and the rest
)

// PackError is a pack stream ReadPack refuses, naming the entry.
type PackError struct {
	Name   string
	Reason string
}

func (e *PackError) Error() string {
	return fmt.Sprintf("readclient: pack entry %q: %s", e.Name, e.Reason)
}

// ReadPack reads an evidence pack served as a tar stream: regular files
// only (no links, devices or folders' contents elsewhere), relative slash
// paths without "." or ".." elements, each path once, at most
// MaxPackFiles files and MaxPackBytes bytes in all. Folders entries are
// skipped (the files imply them). Nothing is written to disk.
func ReadPack(r io.Reader) (*evidence.Pack, error) {
	tr := tar.NewReader(r)
	p := &evidence.Pack{Files: map[string][]byte{}}
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("readclient: pack: %w", err)
		}
		name := h.Name
		switch h.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			if !safePath(strings.TrimSuffix(name, "/")) {
				return nil, &PackError{Name: cutName(name), Reason: "bad path"}
			}
			continue
		default:
			return nil, &PackError{Name: cutName(name), Reason: "not a regular file"}
		}
		if !safePath(name) {
			return nil, &PackError{Name: cutName(name), Reason: "bad path"}
		}
		if _, dup := p.Files[name]; dup {
			return nil, &PackError{Name: name, Reason: "given twice"}
		}
		if len(p.Files) >= MaxPackFiles {
			return nil, &PackError{Name: name, Reason: fmt.Sprintf("more than %d files", MaxPackFiles)}
		}
		if h.Size < 0 || h.Size > MaxPackBytes-total {
			return nil, &PackError{Name: name, Reason: fmt.Sprintf("the pack exceeds %d bytes", int64(MaxPackBytes))}
		}
		data := make([]byte, 0, min(h.Size, 1<<20))
		buf := make([]byte, 32<<10)
		for int64(len(data)) < h.Size {
			n, err := tr.Read(buf[:min(int64(len(buf)), h.Size-int64(len(data)))])
			data = append(data, buf[:n]...)
			if err != nil {
				if errors.Is(err, io.EOF) && int64(len(data)) == h.Size {
					break
				}
				return nil, fmt.Errorf("readclient: pack entry %q: %w", name, err)
			}
		}
		total += h.Size
		p.Files[name] = data
	}
	if len(p.Files) == 0 {
		return nil, &PackError{Reason: "an empty pack"}
	}
	return p, nil
}

// safePath is a relative slash path of plain elements.
func safePath(name string) bool {
	if name == "" || len(name) > 1024 || strings.HasPrefix(name, "/") || path.Clean(name) != name {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." || strings.ContainsAny(el, "\\\x00\n\r:") {
			return false
		}
	}
	return true
}

func cutName(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.ToValidUTF8(s, "?")
}

// Proof fetches the proof the archive builds of the device's export id
// (of principal when not empty). It is not trusted: check it with
// proof.Verify pinned to the auditor's trust file and archive key.
func (c *Client) Proof(ctx context.Context, device, id, principal string) (*proof.Proof, error) {
	site, name, ok := strings.Cut(device, "/")
	if !ok || site == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("readclient: device %q: want SITE/NAME", device)
	}
	var q url.Values
	if principal != "" {
		q = url.Values{"principal": {principal}}
	}
	body, err := c.get(ctx, "/v1/exports/"+url.PathEscape(site)+"/"+url.PathEscape(name)+"/"+url.PathEscape(id)+"/proof", q, MaxProof)
	if err != nil {
		return nil, err
	}
	p, err := proof.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("readclient: proof: %w", err)
	}
	return p, nil
}

// Evidence downloads the evidence pack of the selection (the query of GET
// /v1/evidence: export, device, principal, from, to, case) and reads it
// with ReadPack.
func (c *Client) Evidence(ctx context.Context, q url.Values) (*evidence.Pack, error) {
	resp, err := c.do(ctx, "/v1/evidence", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, statusError(resp.StatusCode, body)
	}
	p, err := ReadPack(io.LimitReader(resp.Body, MaxPackBytes+int64(MaxPackFiles)*1536+1<<20))
	if err != nil {
		return nil, err
	}
	return p, nil
}
