package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

// EvidenceDir is the folder, under the demo's, of the evidence pack of one
// export the demo leaves behind.
const EvidenceDir = "evidence"

// packOne signs in to the running archive's read API as the demo's auditor
// and has the archive build the evidence pack of export id of device (the
// archive journals it in its access log); the pack is checked against the
// device's trust file and written to dir/EvidenceDir.
func packOne(ctx context.Context, apiAddr, password, device, id string, trust *trustfile.Trust, dir string) (string, error) {
	base := "http://" + apiAddr
	token, err := signIn(ctx, base, AuditorUser, password)
	if err != nil {
		return "", err
	}
	c, err := readclient.New(base, token, nil)
	if err != nil {
		return "", err
	}
	pack, err := c.Evidence(ctx, url.Values{"export": {id}, "device": {device}})
	if err != nil {
		return "", fmt.Errorf("demo: evidence pack of %s: %w", id, err)
	}
	pin, err := trust.Marshal()
	if err != nil {
		return "", err
	}
	if rep := evidence.Verify(pack, proof.Options{Trust: pin}); !rep.OK() {
		return "", fmt.Errorf("demo: evidence pack of %s does not verify: %s", id, strings.Join(rep.Failed(), ", "))
	}
	out := filepath.Join(dir, EvidenceDir)
	if err := pack.WriteDir(out); err != nil {
		return "", err
	}
	return out, nil
}

// signIn opens a session on the read API (POST /v1/session) and returns
// its token.
func signIn(ctx context.Context, base, user, password string) (string, error) {
	body, err := json.Marshal(map[string]string{"user": user, "password": password})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/session", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("demo: sign in to the archive: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("demo: sign in to the archive: %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	var s struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.Token == "" {
		return "", fmt.Errorf("demo: sign in to the archive: no token in the answer")
	}
	return s.Token, nil
}
