package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent/api"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// spoolDrop writes an export into the spool folder the way a desktop flow
// would (data first, then the sidecar, each renamed in) and waits for the
// agent to move it to done/ or rejected/.
func spoolDrop(ctx context.Context, spool string, e export) (string, error) {
	name := e.id + ".pdf"
	meta, err := json.Marshal(map[string]string{
		"id": e.id, "workflow": e.workflow, "app": e.app, "purpose": e.purpose,
		"classification": e.class, "destination": e.dest, "mediaType": e.media, "principal": e.principal,
	})
	if err != nil {
		return "", err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{name, []byte(e.data)}, {name + ".meta.json", meta}} {
		if err := fsutil.WriteFileAtomic(filepath.Join(spool, f.name), f.data, 0o644); err != nil {
			return "", err
		}
		time.Sleep(10 * time.Millisecond) // the sidecar is written last
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// done/ keeps the receipt (not the data file); rejected/ the pair.
		for sub, file := range map[string]string{"done": name + ".receipt.json", "rejected": name} {
			if _, err := os.Stat(filepath.Join(spool, sub, file)); err == nil {
				return "spool: " + sub, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("demo: spool file %s not taken within 30s", name)
}

// client talks to the agent over its unix socket, with each principal's
// token.
type client struct {
	api    *api.Client
	tokens map[string]string
}

func (c *client) waitReady(ctx context.Context, agentDone <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-agentDone:
			return fmt.Errorf("demo: agent stopped while starting: %v", err)
		default:
		}
		if c.api.Ready(ctx) == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("demo: agent not ready within 30s")
}

// post sends one export: JSON payloads in the JSON envelope, anything else
// as raw bytes with Edgeseal-* headers. A refusal is an outcome ("422
// schema_violation"), with the seq of its export.rejected record.
func (c *client) post(ctx context.Context, e export) (outcome, seq string, err error) {
	ac := c.api.WithToken(c.tokens[e.principal])
	m := api.ExportMeta{ID: e.id, Workflow: e.workflow, App: e.app, Purpose: e.purpose, Classification: e.class, Destination: e.dest}
	var res *api.ExportResult
	if strings.HasSuffix(e.media, "json") {
		res, err = ac.ExportJSON(ctx, m, json.RawMessage(e.data))
	} else {
		res, err = ac.Export(ctx, m, e.media, []byte(e.data))
	}
	var se *api.StatusError
	switch {
	case err == nil:
		return fmt.Sprint(res.Status), fmt.Sprint(res.Receipt.Seq), nil
	case !errors.As(err, &se):
		return "", "", err
	case se.Status >= 500:
		return "", "", fmt.Errorf("demo: agent answered %d: %s", se.Status, se.Body)
	}
	outcome = fmt.Sprint(se.Status)
	if se.Info.Code != "" {
		outcome += " " + se.Info.Code
	}
	if se.Info.Seq != nil {
		seq = fmt.Sprint(*se.Info.Seq)
	}
	return outcome, seq, nil
}

// postAnonymous posts the JSON envelope env without a token and returns
// the answer's status.
func (c *client) postAnonymous(ctx context.Context, env []byte) (int, error) {
	res, err := c.api.WithToken("").ExportEnvelope(ctx, env)
	var se *api.StatusError
	switch {
	case err == nil:
		return res.Status, nil
	case errors.As(err, &se):
		return se.Status, nil
	}
	return 0, err
}

func (c *client) seal(ctx context.Context) error {
	_, err := c.api.WithToken(c.tokens["site-ops"]).Seal(ctx)
	if se := (*api.StatusError)(nil); errors.As(err, &se) {
		return fmt.Errorf("demo: seal answered %d: %s", se.Status, se.Body)
	}
	return err
}

// waitDelivered waits until the agent's outbox is empty: every bundle
// delivered and receipted by the archive.
func (c *client) waitDelivered(ctx context.Context) error {
	ac := c.api.WithToken(c.tokens["site-ops"])
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := ac.Status(ctx)
		if se := (*api.StatusError)(nil); err != nil && !errors.As(err, &se) {
			return err
		}
		if err == nil && st.Outbox == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("demo: bundles not receipted by the archive within 60s (see agent.log and archive.log)")
}

// exportStatus asks the auditor's view of an export: journaled, sealed,
// sent or archived.
func (c *client) exportStatus(ctx context.Context, id, seq string) (status, seqOut string, err error) {
	info, err := c.api.WithToken(c.tokens["auditor"]).ExportStatus(ctx, id, "")
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		return "refused", seq, nil
	case errors.As(err, &se):
		return "", "", fmt.Errorf("demo: status of %s answered %d: %s", id, se.Status, se.Body)
	case err != nil:
		return "", "", fmt.Errorf("demo: status of %s: %w", id, err)
	}
	return info.Status, fmt.Sprint(info.Seq), nil
}
