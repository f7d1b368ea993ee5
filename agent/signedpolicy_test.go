package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
)

// signedAgent is a core started on a signed policy as the daemon starts
// it: the policy source of the config, the rig, the config (principal
// "exp" holds the exporter role).
type signedAgent struct {
	src *PolicySource
	r   *rig
	cfg *config.Config
}

// startSigned opens a rig in dir (simulator TPM under dir/sim) on the
// signed policy file signedPath under the admin set adminsPath and
// journals it as the start's policy.change (PolicySource.Start).
func startSigned(t *testing.T, dir, signedPath, adminsPath string, mod ...func(*Options)) *signedAgent {
	t.Helper()
	a, sp := openSigned(t, dir, signedPath, adminsPath, mod...)
	if err := a.src.Start(context.Background(), a.r.core, sp, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return a
}

// openSigned is startSigned without the start: the core runs on the
// policy read from signedPath, nothing journaled about it; sp is that
// signed policy.
func openSigned(t *testing.T, dir, signedPath, adminsPath string, mod ...func(*Options)) (*signedAgent, *signed.Signed) {
	t.Helper()
	cfg := &config.Config{Policy: signedPath, PolicyAdmins: adminsPath, TPM: "simulator:x",
		Principals: config.Principals{{Name: "exp", Roles: []config.Role{config.RoleExporter}}}}
	src, err := OpenPolicySource(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	pol, sp, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	mods := append([]func(*Options){func(o *Options) { o.Policy = pol }}, mod...)
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), mods...)
	return &signedAgent{src: src, r: r, cfg: cfg}, sp
}
