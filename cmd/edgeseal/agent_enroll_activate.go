package main

import (
	"context"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// activateOverMQTT answers the challenge of the archive's answer to the
// enrollment request and returns the archive's answer to the response.
func activateOverMQTT(ctx context.Context, t *tpm.TPM, opts sync.EnrollOptions, ack *sync.EnrollAck, stdout io.Writer) (*sync.EnrollAck, error) {
	ch, err := archive.ParseChallenge([]byte(ack.Challenge))
	if err != nil {
		return nil, fmt.Errorf("agent enroll: the archive's challenge: %w", err)
	}
	raw, err := agentd.AnswerChallenge(ctx, t, opts.Site, opts.Device, ch)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "archive: enrollment of %s received, pending; answering its credential challenge\n", ack.Device)
	opts.Request = raw
	next, _, err := sync.Enroll(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("agent enroll: activation: %w", err)
	}
	if next.Status == sync.EnrollRefused {
		return nil, fmt.Errorf("agent enroll: the archive REFUSED the credential activation: %s", next.Reason)
	}
	fmt.Fprintf(stdout, "archive: credential of key %s activated\n", next.KeyID)
	return next, nil
}

// answerChallengeFile answers a challenge file (`archive enroll-file`)
// into a response file for `archive enroll-file --response`.
func answerChallengeFile(ctx context.Context, t *tpm.TPM, site, device, path, out string, stdout io.Writer) error {
	data, err := fsutil.ReadLimited(path, archive.MaxActivationSize)
	if err != nil {
		return err
	}
	ch, err := archive.ParseChallenge(data)
	if err != nil {
		return err
	}
	raw, err := agentd.AnswerChallenge(ctx, t, site, device, ch)
	if err != nil {
		return err
	}
	if out == "" {
		out = withSuffix(path, ".response.json")
	}
	if err := fsutil.WriteFileAtomic(out, raw, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "credential activated; wrote %s: bring it to the archive: edgeseal archive enroll-file --response %s\n", out, out)
	return nil
}
