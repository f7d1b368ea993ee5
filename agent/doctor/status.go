package doctor

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
func (d *Doctor) reportAgentLink(st *agent.Status) {
	k := st.Key
	switch {
	case k.PCRAuthorizationNeeded:
		d.Report(LevelFail, "key", fmt.Sprintf("signing key %s (in force since %s) needs a PCR authorization: the PCRs do not hold the authorized values", k.KeyID, fmtTime(k.Since)), authorizeFix)
	case k.PCRPolicy:
		d.Report(LevelOK, "key", fmt.Sprintf("signing key %s in force since %s, bound to a PCR policy key; no PCR authorization needed", k.KeyID, fmtTime(k.Since)), "")
	default:
		d.Report(LevelOK, "key", fmt.Sprintf("signing key %s in force since %s, bound to fixed PCR values", k.KeyID, fmtTime(k.Since)), "")
	}
	if b := st.Broker; b != nil {
		if b.Connected {
			d.Report(LevelOK, "link", fmt.Sprintf("the agent is connected to %s since %s", b.Broker, fmtTime(b.Since)), "")
		} else {
			msg := fmt.Sprintf("the agent is not connected to %s since %s", b.Broker, fmtTime(b.Since))
			if b.LastError != "" {
				msg += fmt.Sprintf("; last error at %s: %s", fmtTime(b.LastErrorTime), b.LastError)
			}
			d.Report(LevelWarn, "link", msg, "see the broker line below and journalctl -u edgeseal-agent; the agent keeps retrying")
		}
	}
	dl := st.LastDelivery
	if dl != nil {
		d.Report(LevelOK, "delivery", fmt.Sprintf("last bundle receipted: %s (%s) at %s, archive log index %d", dl.Bundle, dl.Digest, fmtTime(dl.Time), dl.LogIndex), "")
	} else if st.Broker != nil {
		d.Report(LevelOK, "delivery", "no bundle receipted by the archive yet (as far back as the agent looked)", "")
	}
	r := st.LastRefusal
	if r == nil {
		return
	}
	what := fmt.Sprintf("the archive refused bundle %s (%s) %d time(s), last at %s: %s (failed checks: %s)",
		r.Bundle, r.Digest, r.Count, fmtTime(r.Time), r.Message, strings.Join(r.Checks, ", "))
	if dl != nil && !dl.Time.Before(r.Time) {
		d.Report(LevelOK, "refusal", what+"; bundles were delivered since", "")
		return
	}
	d.Report(LevelWarn, "refusal", what,
		"on the archive, see edgeseal archive devices list and its log for the reason (a device pending approval: edgeseal archive devices approve); the agent sends the bundle again after sync.retry_held or a restart")
}

// reportJournalDelivery prints the last delivery a stopped agent's
// journal holds (the running agent's status says the same).
func (d *Doctor) reportJournalDelivery(j *store.Journal) {
	dl, err := agent.LastDelivery(d.ctx, j)
	switch {
	case err != nil:
		d.Report(LevelFail, "delivery", err.Error(), "")
	case dl != nil:
		d.Report(LevelOK, "delivery", fmt.Sprintf("last bundle receipted: %s (%s) at %s, archive log index %d", dl.Bundle, dl.Digest, fmtTime(dl.Time), dl.LogIndex), "")
	case d.cfg.Sync.Broker != "":
		d.Report(LevelOK, "delivery", "no bundle receipted by the archive in the journal's recent records", "")
	}
}

// fmtTime is t in RFC 3339, or "unknown".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339)
}
