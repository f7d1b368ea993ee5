package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// withSuffix is path without a ".json" ending, plus suffix.
func withSuffix(path, suffix string) string { return strings.TrimSuffix(path, ".json") + suffix }

// cmdArchiveEnrollFile is the enrollment of an air-gapped device, by
// files: `archive enroll-file REQUEST.json [--challenge FILE]` enrolls the
// device from its enrollment request (or DEVICE.json), pending until
// approved, and writes a credential challenge for it (default
// REQUEST.challenge.json); the device answers it with `agent enroll
// --answer FILE`, and `archive enroll-file --response RESPONSE.json`
// marks the request's credential activated.
func cmdArchiveEnrollFile(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive enroll-file")
	challenge := f.fs.String("challenge", "", "where to write the credential challenge (default: REQUEST.challenge.json)")
	response := f.fs.String("response", "", "the device's answer to its challenge (agent enroll --answer), instead of a request")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if *response != "" {
		if len(pos) != 0 || *challenge != "" {
			return usageErr("archive enroll-file --response FILE: no request or --challenge with it")
		}
		return enrollFileResponse(ctx, f, *response, stdout, log)
	}
	if len(pos) != 1 {
		return usageErr("archive enroll-file: want one REQUEST.json (or DEVICE.json), or --response FILE")
	}
	data, err := fsutil.ReadLimited(pos[0], archive.MaxEnrollSize)
	if err != nil {
		return err
	}
	req, err := archive.ParseEnrollRequest(data)
	if err != nil {
		return err
	}
	d, done, err := f.devices(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	info, err := d.Enroll(ctx, req)
	if err != nil {
		return err
	}
	t := req.ParsedTrust()
	fmt.Fprintf(stdout, "enrolled %s: key %s, PCRs %v (current values match: %v); status %s\n",
		info.Name, t.KeyID, t.PCRSelection.PCRs, req.PCRsMatch(), info.Status)
	p := info.PendingKey(t.KeyID)
	if p == nil {
		return nil
	}
	if info.Status == archive.StatusApproved {
		// The daemon's alarm for the same case (Archive.ReceiveEnrollment).
		log.Error("ALERT "+archive.KindEnrollmentApproved, "severity", archive.SeverityAlarm, "device", info.Name,
			"reasons", append([]string{fmt.Sprintf("a new key %s was enrolled for %s, approved with key %s", t.KeyID, info.Name, info.KeyID)},
				archive.EnrollNextSteps(info, t.KeyID)...))
		fmt.Fprintf(stdout, "WARNING: %s is approved with key %s: a new key was enrolled for it; unless its TPM was cleared, its board or disk replaced or its firmware updated, someone may be enrolling in its name\n", info.Name, info.KeyID)
	}
	if !p.Activated() {
		if *challenge == "" {
			*challenge = withSuffix(pos[0], ".challenge.json")
		}
		ch, err := d.Challenge(ctx, info.Name, t.KeyID)
		if err != nil {
			return err
		}
		raw, err := ch.Marshal()
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(*challenge, raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the credential challenge %s: on the device, run edgeseal agent enroll --config AGENT.yaml --answer %s, and bring its answer back to: edgeseal archive enroll-file --response FILE\n", *challenge, *challenge)
	}
	for _, step := range archive.EnrollNextSteps(info, t.KeyID) {
		fmt.Fprintln(stdout, step)
	}
	return nil
}

// enrollFileResponse checks a device's answer to its challenge file.
func enrollFileResponse(ctx context.Context, f archiveFlags, path string, stdout io.Writer, log *slog.Logger) error {
	data, err := fsutil.ReadLimited(path, archive.MaxActivationSize)
	if err != nil {
		return err
	}
	r, err := archive.ParseActivationResponse(data)
	if err != nil {
		return err
	}
	d, done, err := f.devices(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	info, err := d.Activate(ctx, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: credential of key %s activated (its AK is in the TPM of its EK)\n", info.Name, r.KeyID)
	for _, step := range archive.EnrollNextSteps(info, r.KeyID) {
		fmt.Fprintln(stdout, step)
	}
	return nil
}
