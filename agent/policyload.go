package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/tpm"
)

// PolicySource is where the agent reads its policy: the config's policy
// file and, when the config names policy_admins, the admin set it must
// be signed by. The admin set is read once, at start; a reload rereads
// only the policy file.
type PolicySource struct {
	Path   string
	Admins *signed.Admins // nil: the policy file is a bare (unsigned) policy
}

// UnsignedPolicyError: the device runs on a hardware TPM and its policy
// is not signed.
type UnsignedPolicyError struct{ Path string }

func (e *UnsignedPolicyError) Error() string {
	return fmt.Sprintf("agent: policy %s is not signed: a device with a hardware TPM needs policy_admins and a signed policy (edgeseal policy sign)", e.Path)
}

// OpenPolicySource reads the admin set cfg.PolicyAdmins names (if any),
// checks the config's principals against it (separation of duties) and
// refuses an unsigned policy on a hardware TPM ("device:" spec): only
// swtpm and the in-process simulator, used in tests and demos, run on a
// bare policy file, with a warning.
func OpenPolicySource(cfg *config.Config, log *slog.Logger) (*PolicySource, error) {
	src := &PolicySource{Path: cfg.Policy}
	if cfg.PolicyAdmins == "" {
		if sp, err := tpm.ParseSpec(cfg.TPM); err == nil && sp.Kind == tpm.KindDevice {
			return nil, &UnsignedPolicyError{Path: cfg.Policy}
		}
		log.Warn("policy is not signed (no policy_admins): whoever can write the file changes it", "policy", cfg.Policy)
		return src, nil
	}
	a, err := signed.ReadAdmins(cfg.PolicyAdmins)
	if err != nil {
		return nil, err
	}
	if err := CheckPrincipalDuties(cfg.Principals, a); err != nil {
		return nil, err
	}
	src.Admins = a
	return src, nil
}

// Load reads the policy file: a bare policy when the source has no admin
// set, else a signed policy verified against it.
func (s *PolicySource) Load() (*policy.Policy, *signed.Signed, error) {
	if s.Admins == nil {
		p, err := policy.Load(s.Path)
		return p, nil, err
	}
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, dsse.MaxEnvelopeSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("policy: read %s: %w", s.Path, err)
	}
	sp, err := signed.Verify(b, s.Admins)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s)", err, s.Path)
	}
	return sp.Policy, sp, nil
}

// PolicyDowngradeError: the journal ran on signed policies and the config
// names no admin set (the policy file is bare).
type PolicyDowngradeError struct{ Since uint64 }

func (e *PolicyDowngradeError) Error() string {
	return fmt.Sprintf("agent: this journal runs on signed policies since seq %d; the config names no policy_admins: refusing an unsigned policy", e.Since)
}

// Start journals the signed policy the agent starts with. A bare policy
// is refused when the journal ran on a signed one before
// (*PolicyDowngradeError): removing policy_admins from the config does
// not turn the signatures off.
func (s *PolicySource) Start(ctx context.Context, c *Core, sp *signed.Signed, log *slog.Logger) error {
	if sp == nil {
		since, ok, err := c.SignedSince()
		if err != nil {
			return err
		}
		if ok {
			return &PolicyDowngradeError{Since: since}
		}
		return nil
	}
	seq, fresh, err := c.InstallPolicy(ctx, sp, s.Admins, signed.ReasonStart, custody.Actor{Kind: "agent", ID: "policy", Via: "start"})
	if err != nil {
		return err
	}
	if fresh {
		log.Warn("policy admin set new to this journal: journaled with the policy", "admins", s.Admins.Names(), "threshold", s.Admins.Threshold, "digest", s.Admins.Digest(), "seq", seq)
	}
	log.Info("policy in force", "policy", sp.Policy.Digest(), "signers", sp.Signers, "seq", seq)
	return nil
}

// ErrPolicyUnsignedReload: a reload needs a signed policy.
var ErrPolicyUnsignedReload = errors.New("agent: policy reload needs a signed policy (policy_admins)")

// PolicyReload is the answer to a reload.
type PolicyReload struct {
	Policy   string   `json:"policy"` // digest of the policy now in force
	Signers  []string `json:"signers"`
	Seq      uint64   `json:"seq"`       // of its policy.change record
	Same     bool     `json:"unchanged"` // the file held the policy in force; journaled anyway
	Previous string   `json:"previous"`  // digest of the policy before
}

// Reload rereads the policy file and, when it is signed by the threshold,
// journals it and puts it in force. A refused file raises the core's
// alarm (RefusePolicy) and the policy in force stays. via is "sighup" or
// "api"; who the principal that asked ("" for a signal).
func (s *PolicySource) Reload(ctx context.Context, c *Core, via, who string) (*PolicyReload, error) {
	if s.Admins == nil {
		c.RefusePolicy(ErrPolicyUnsignedReload)
		return nil, ErrPolicyUnsignedReload
	}
	prev := c.Policy().Digest()
	_, sp, err := s.Load()
	if err != nil {
		c.RefusePolicy(err)
		if al := unknownSignerAlert(err); al != nil {
			if jerr := c.raiseAlerts(ctx, "", custody.Actor{Kind: "agent", ID: "policy", Via: via}, al); jerr != nil {
				c.log.Error("governance alert not journaled", "err", jerr)
			}
		}
		return nil, err
	}
	actor := custody.Actor{Kind: "agent", ID: "policy", Via: via}
	if who != "" {
		actor = custody.Actor{Kind: "principal", ID: who, Via: via}
	}
	seq, _, err := c.InstallPolicy(ctx, sp, s.Admins, signed.ReasonReload, actor)
	if err != nil {
		c.RefusePolicy(err)
		return nil, err
	}
	c.log.Info("policy reloaded", "policy", sp.Policy.Digest(), "previous", prev, "signers", sp.Signers, "seq", seq, "via", via)
	return &PolicyReload{Policy: sp.Policy.Digest(), Signers: sp.Signers, Seq: seq, Same: prev == sp.Policy.Digest(), Previous: prev}, nil
}
