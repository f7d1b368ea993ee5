package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/store"
)

// reportAgentLink prints what a running agent's /v1/status says of its key
// and of its link to the archive: the signing key in force and whether it
// waits for a PCR authorization, the broker connection, the last delivery
// and the archive's last refusal.
func (d *doctor) reportAgentLink(st *agent.Status) {
	k := st.Key
	switch {
	case k.PCRAuthorizationNeeded:
		d.report(levelFail, "key", fmt.Sprintf("signing key %s (in force since %s) needs a PCR authorization: the PCRs do not hold the authorized values", k.KeyID, fmtTime(k.Since)), authorizeFix)
	case k.PCRPolicy:
		d.report(levelOK, "key", fmt.Sprintf("signing key %s in force since %s, bound to a PCR policy key; no PCR authorization needed", k.KeyID, fmtTime(k.Since)), "")
	default:
		d.report(levelOK, "key", fmt.Sprintf("signing key %s in force since %s, bound to fixed PCR values", k.KeyID, fmtTime(k.Since)), "")
	}
	if b := st.Broker; b != nil {
		if b.Connected {
			d.report(levelOK, "link", fmt.Sprintf("the agent is connected to %s since %s", b.Broker, fmtTime(b.Since)), "")
		} else {
			msg := fmt.Sprintf("the agent is not connected to %s since %s", b.Broker, fmtTime(b.Since))
			if b.LastError != "" {
				msg += fmt.Sprintf("; last error at %s: %s", fmtTime(b.LastErrorTime), b.LastError)
			}
			d.report(levelWarn, "link", msg, "see the broker line below and journalctl -u edgeseal-agent; the agent keeps retrying")
		}
	}
	dl := st.LastDelivery
	if dl != nil {
		d.report(levelOK, "delivery", fmt.Sprintf("last bundle receipted: %s (%s) at %s, archive log index %d", dl.Bundle, dl.Digest, fmtTime(dl.Time), dl.LogIndex), "")
	} else if st.Broker != nil {
		d.report(levelOK, "delivery", "no bundle receipted by the archive yet (as far back as the agent looked)", "")
	}
	r := st.LastRefusal
	if r == nil {
		return
	}
	what := fmt.Sprintf("the archive refused bundle %s (%s) %d time(s), last at %s: %s (failed checks: %s)",
		r.Bundle, r.Digest, r.Count, fmtTime(r.Time), r.Message, strings.Join(r.Checks, ", "))
	if dl != nil && !dl.Time.Before(r.Time) {
		d.report(levelOK, "refusal", what+"; bundles were delivered since", "")
		return
	}
	d.report(levelWarn, "refusal", what,
		"on the archive, see edgeseal archive devices list and its log for the reason (a device pending approval: edgeseal archive devices approve); the agent sends the bundle again after sync.retry_held or a restart")
}

// reportJournalDelivery prints the last delivery a stopped agent's
// journal holds (the running agent's status says the same).
func (d *doctor) reportJournalDelivery(j *store.Journal) {
	dl, err := agent.LastDelivery(d.ctx, j)
	switch {
	case err != nil:
		d.report(levelFail, "delivery", err.Error(), "")
	case dl != nil:
		d.report(levelOK, "delivery", fmt.Sprintf("last bundle receipted: %s (%s) at %s, archive log index %d", dl.Bundle, dl.Digest, fmtTime(dl.Time), dl.LogIndex), "")
	case d.cfg.Sync.Broker != "":
		d.report(levelOK, "delivery", "no bundle receipted by the archive in the journal's recent records", "")
	}
}

// fmtTime is t in RFC 3339, or "unknown".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339)
}
