package agent

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// tpmDevice lets the bundle tamper table seal with a real TPM.
type tpmDevice struct{ t *tpm.TPM }

func (d tpmDevice) KeyID() string { return d.t.Identity().KeyID }
func (d tpmDevice) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	return d.t.Sign(ctx, digest)
}
func (d tpmDevice) IncrementCounter(ctx context.Context) (uint64, error) {
	return d.t.IncrementCounter(ctx)
}
func (d tpmDevice) Identity() custody.Identity { return BundleIdentity(d.t.Identity()) }
func (d tpmDevice) Quote(ctx context.Context, nonce []byte) (bundle.Quote, error) {
	q, err := d.t.Quote(ctx, nonce)
	if err != nil {
		return bundle.Quote{}, err
	}
	return bundle.Quote{Attest: q.Attest, Signature: q.Signature, PCRs: q.PCRs, Values: q.Values,
		Files: bundle.QuoteFiles{Msg: q.Files.Msg, Sig: q.Files.Sig, PCRs: q.Files.PCRs}}, nil
}

// The verifier's tamper table, rerun on bundles sealed by the TPM
// simulator: every attack the device can produce fails with its own check,
// and the untouched chain passes.
func TestTamperTableOnTPMBundles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dev, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	chain, err := bundletest.NewChain(ctx, tpmDevice{dev}, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range chain.Bundles {
		var prev *verify.State
		if i > 0 {
			prev = chain.States[i-1]
		}
		if rep := verify.Verify(b, chain.Trust, prev); !rep.OK() {
			t.Fatalf("untouched bundle %d fails:\n%s", i, rep)
		}
	}
	ran := 0
	for _, cs := range bundletest.Cases {
		t.Run(cs.Kind, func(t *testing.T) {
			b, prev, err := chain.Tamper(ctx, cs)
			if errors.Is(err, bundletest.ErrUnsupported) {
				t.Logf("not producible with this device: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ran++
			rep := verify.Verify(b, chain.Trust, prev)
			if rep.OK() {
				t.Fatalf("%s: tampered bundle verified", cs.Desc)
			}
			if !slices.Contains(rep.Failed(), cs.Want) {
				t.Fatalf("%s: failed %v, want %s among them", cs.Desc, rep.Failed(), cs.Want)
			}
		})
	}
	if ran < 15 {
		t.Fatalf("only %d tamper cases ran on TPM bundles, want at least 15", ran)
	}
}
