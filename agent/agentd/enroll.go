package agentd

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// EnrollOptions are the options of sync.Enroll for the agent of cfg and
// request (an enrollment request or an activation response): its broker
// and TLS, and the archive key its answers are signed by, the newest one
// the agent learned (CurrentArchiveKey); timeout bounds the wait.
func EnrollOptions(cfg *config.Config, request []byte, timeout time.Duration, log *slog.Logger) (sync.EnrollOptions, error) {
	key, err := ReadArchiveKey(cfg.Sync.ArchiveKey)
	if err != nil {
		return sync.EnrollOptions{}, fmt.Errorf("sync: %w", err)
	}
	if key, err = CurrentArchiveKey(cfg, key); err != nil {
		return sync.EnrollOptions{}, err
	}
	var tc *tls.Config
	if cfg.Sync.CA != "" || cfg.Sync.Cert != "" {
		if tc, err = SyncTLS(cfg.Sync); err != nil {
			return sync.EnrollOptions{}, err
		}
	}
	return sync.EnrollOptions{
		Broker: cfg.Sync.Broker, Site: cfg.Site, Device: cfg.Device, TLS: tc,
		ArchiveKey: key, Request: request, Timeout: timeout, Logger: log.With("component", "sync"),
	}, nil
}

// EnrollRequest reads the TPM's identity and current PCR values into an
// enrollment request, and checks it the way the archive will.
func EnrollRequest(ctx context.Context, t *tpm.TPM, site, device, note string) ([]byte, *archive.EnrollRequest, error) {
	trust, err := trustfile.NewTrust(site, device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return nil, nil, err
	}
	tb, err := trust.Marshal()
	if err != nil {
		return nil, nil, err
	}
	cur, err := t.ReadPCRs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("agent enroll: read PCRs: %w", err)
	}
	pcrs, _ := trust.PCRs()
	vals := make(map[string]string, len(pcrs))
	for _, p := range pcrs {
		vals[strconv.Itoa(p)] = hex.EncodeToString(cur[p])
	}
	r := &archive.EnrollRequest{Version: archive.EnrollVersion, Trust: tb, PCRValues: vals, Note: note}
	raw, err := r.Marshal()
	if err != nil {
		return nil, nil, err
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("agent enroll: %w", err)
	}
	return raw, req, nil
}

// AnswerChallenge activates the credential of an archive's challenge
// with the device's TPM (TPM2_ActivateCredential with its EK and AK) and
// returns the activation response.
func AnswerChallenge(ctx context.Context, t *tpm.TPM, site, device string, ch *archive.Challenge) ([]byte, error) {
	name, key := site+"/"+device, t.Identity().KeyID
	if ch.Device != name || ch.KeyID != key {
		return nil, fmt.Errorf("agent enroll: the challenge is for %s key %s, this device is %s key %s", ch.Device, ch.KeyID, name, key)
	}
	cred, err := t.ActivateCredential(ctx, ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		return nil, fmt.Errorf("agent enroll: %w", err)
	}
	r := &archive.ActivationResponse{Version: archive.ActivationVersion, Type: archive.TypeActivation, Device: name, KeyID: key, Credential: cred}
	raw, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := archive.ParseActivationResponse(raw); err != nil {
		return nil, fmt.Errorf("agent enroll: %w", err)
	}
	return raw, nil
}
