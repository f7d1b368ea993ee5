package signed

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
)

// Version is one policy in the history of a device: the policy.change
// records that put it in force (a restart journals the policy again), its
// signers and what changed from the version before.
type Version struct {
	Policy  string // digest
	Name    string // the policy's free-text name
	Seqs    []uint64
	Time    time.Time // of its first record
	Reasons []string
	Signers []string
	Admins  string   // digest of the admin set it was checked against
	Changes []Change // from the version before (nil for the first)
}

// History reads the policy.change records among recs (in journal order;
// other records are passed over), verifies each against the admin set it
// carries, and returns the versions in order. Consecutive records of the
// same policy are one version.
func History(recs []*custody.Record) ([]Version, error) {
	var out []Version
	var prev *Document
	for _, r := range recs {
		if r.Type != custody.TypePolicyChange {
			continue
		}
		c, s, err := ParseChangeBody(r.Body)
		if err != nil {
			return out, fmt.Errorf("policy.change at seq %d: %w", r.Seq, err)
		}
		if n := len(out); n > 0 && out[n-1].Policy == c.Policy {
			v := &out[n-1]
			v.Seqs = append(v.Seqs, r.Seq)
			v.Reasons = append(v.Reasons, c.Reason)
			continue
		}
		v := Version{Policy: c.Policy, Name: s.Policy.Name(), Seqs: []uint64{r.Seq}, Time: r.Time, Reasons: []string{c.Reason},
			Signers: s.Signers, Admins: c.Admins.Digest()}
		if prev != nil {
			if v.Changes, err = Diff(prev, s.Document); err != nil {
				return out, err
			}
		}
		prev = s.Document
		out = append(out, v)
	}
	return out, nil
}

// WriteHistory prints versions as a changelog, oldest first.
func WriteHistory(w io.Writer, versions []Version) error {
	var b strings.Builder
	for i, v := range versions {
		fmt.Fprintf(&b, "version %d: %s", i+1, v.Policy)
		if v.Name != "" {
			fmt.Fprintf(&b, " %q", v.Name)
		}
		fmt.Fprintf(&b, "\n  in force from seq %d (%s), %s\n", v.Seqs[0], v.Time.UTC().Format(time.RFC3339), strings.Join(v.Reasons, ", "))
		fmt.Fprintf(&b, "  signed by %s (admin set %s)\n", strings.Join(v.Signers, ", "), v.Admins)
		switch {
		case i == 0:
			b.WriteString("  first version in these records\n")
		case len(v.Changes) == 0:
			b.WriteString("  no workflow or schema changes\n")
		}
		for _, c := range v.Changes {
			fmt.Fprintf(&b, "  - %s\n", c)
		}
	}
	if len(versions) == 0 {
		b.WriteString("no policy.change records\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDiff prints changes one a line ("no changes" when none).
func WriteDiff(w io.Writer, changes []Change) error {
	var b strings.Builder
	for _, c := range changes {
		fmt.Fprintf(&b, "%s\n", c)
	}
	if len(changes) == 0 {
		b.WriteString("no workflow or schema changes\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ReadDocument reads a policy for diff: a signed policy (its signatures
// are not checked) or a bare policy file (packed with its schema files).
func ReadDocument(path string, data []byte) (*Document, error) {
	if len(data) > 0 && data[0] == '{' {
		if _, d, _, err := ParseEnvelope(data); err == nil {
			return d, nil
		}
	}
	p, err := Pack(path)
	if err != nil {
		return nil, err
	}
	d, _, err := ParseDocument(p)
	return d, err
}
