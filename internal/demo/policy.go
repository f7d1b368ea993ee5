package demo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// demoAdmins are the demo's policy administrators: both must sign (2 of 2).
var demoAdmins = []string{"qa-lead", "plant-manager"}

// signPolicy makes the demo's policy-admin keys (etc/policy-admins/NAME.key),
// their admin set (etc/policy-admins.json, 2 of 2) and the policy signed by
// both (etc/policy.signed.json), as `edgeseal policy keygen` and `edgeseal
// policy sign` do.
func signPolicy(ctx context.Context, etc string) error {
	dir := filepath.Join(etc, "policy-admins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	set := signed.Admins{Version: signed.AdminsVersion, Threshold: len(demoAdmins)}
	var keys []*signed.Key
	for _, name := range demoAdmins {
		path := filepath.Join(dir, name+".key")
		ad, err := signed.WriteKey(path, name, false)
		if err != nil {
			return err
		}
		k, err := signed.ReadKey(path)
		if err != nil {
			return err
		}
		set.Admins = append(set.Admins, ad)
		keys = append(keys, k)
	}
	b, err := json.MarshalIndent(&set, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(etc, "policy-admins.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	payload, err := signed.Pack(filepath.Join(etc, "policy.yaml"))
	if err != nil {
		return err
	}
	var env *dsse.Envelope
	var out []byte
	for _, k := range keys {
		if out != nil {
			if env, _, _, err = signed.ParseEnvelope(out); err != nil {
				return err
			}
		}
		if out, err = signed.Sign(ctx, env, payload, k); err != nil {
			return err
		}
	}
	return fsutil.WriteFileAtomic(filepath.Join(etc, "policy.signed.json"), out, 0o644)
}
