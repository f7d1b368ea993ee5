package main

import (
	"context"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// Trust files and good bundles, by their corpus path.
const (
	trustDev1    = "trust/site1-dev1.json"
	trustDev2    = "trust/site1-dev2.json"
	trustRotated = "trust/site1-dev3.json"
	trustFormat1 = "trust/format1.json"
)

func goodPath(device string, i int) string { return fmt.Sprintf("good/%s-%d.tar", device, i) }

// build makes every bundle and case of the corpus.
func build(ctx context.Context, format1 string) (*corpus, error) {
	c := &corpus{files: map[string][]byte{}, doc: Verdicts{Version: 1, Limits: Limits{
		File: bundle.DefaultLimits.File, Total: bundle.DefaultLimits.Total, Files: bundle.DefaultLimits.Files,
	}}}
	opts := func(dev string) bundletest.Options {
		return bundletest.Options{Site: "site1", Device: dev, Records: 6, PayloadSize: 48, KeyCreate: true}
	}
	dev1, err := bundletest.NewChain(ctx, nil, 3, opts("dev1"))
	if err != nil {
		return nil, err
	}
	dev2, err := bundletest.NewChain(ctx, nil, 1, opts("dev2"))
	if err != nil {
		return nil, err
	}
	if err := c.addTrust(trustDev1, dev1.Trust); err != nil {
		return nil, err
	}
	if err := c.addTrust(trustDev2, dev2.Trust); err != nil {
		return nil, err
	}
	for i, b := range dev1.Bundles {
		if err := c.addBundle(goodPath("dev1", i), b); err != nil {
			return nil, err
		}
	}
	good0, good1, good2 := goodPath("dev1", 0), goodPath("dev1", 1), goodPath("dev1", 2)
	c.verified("good.single", "the first bundle of a device (format 2), no previous state", trustDev1, nil, good0)
	c.verified("good.chain", "the third bundle of a chain, after the first two verified in order", trustDev1, []string{good0, good1}, good2)
	c.verified("good.no-previous", "a later bundle verified on its own: checks against the previous state pass with nothing to compare", trustDev1, nil, good1)
	c.refused("trust.other-device", "a good bundle checked against the trust file of another device", trustDev2, nil, good0, verify.CheckCheckpointOrigin)
	c.refused("bundle.replayed.same", "the first bundle sent again after itself (replay)", trustDev1, []string{good0}, good0, verify.CheckCounterRising)
	c.refused("chain.out-of-order", "the second bundle checked after the third", trustDev1, []string{good0, good1, good2}, good1, verify.CheckCounterRising)

	// The project's tamper table: each attack on bundle 1 of the chain,
	// verified against the state bundle 0 left.
	for _, cs := range bundletest.Cases {
		if cs.Kind == "bundle.replayed" {
			continue // bundle.replayed.same above, without a copy
		}
		b, _, err := dev1.Tamper(ctx, cs)
		if err != nil {
			return nil, err
		}
		var prev []string
		for i := 0; i <= cs.Prev; i++ {
			prev = append(prev, goodPath("dev1", i))
		}
		p := "tampered/" + cs.Kind + ".tar"
		if err := c.addBundle(p, b); err != nil {
			return nil, err
		}
		c.refused(cs.Kind, cs.Desc, trustDev1, prev, p, cs.Want)
	}
	if err := c.edits(dev1); err != nil {
		return nil, err
	}
	if err := c.tarCases(dev1); err != nil {
		return nil, err
	}
	if err := c.rotation(ctx); err != nil {
		return nil, err
	}
	if err := c.pcrAuth(ctx); err != nil {
		return nil, err
	}
	if err := c.agentBundles(ctx); err != nil {
		return nil, err
	}
	if err := c.format1(format1); err != nil {
		return nil, err
	}
	return c, c.signedPolicy(ctx)
}

func (c *corpus) addTrust(path string, t *trustfile.Trust) error {
	raw, err := t.Marshal()
	if err != nil {
		return err
	}
	c.add(path, raw)
	return nil
}

func (c *corpus) addBundle(path string, b *bundle.Bundle) error {
	raw, err := b.Bytes()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.add(path, raw)
	return nil
}

func (c *corpus) verified(name, desc, trust string, prev []string, b string) {
	c.doc.Cases = append(c.doc.Cases, Case{Name: name, Description: desc, Trust: trust, Previous: nonNil(prev), Bundle: b, Verdict: Verified})
}

func (c *corpus) refused(name, desc, trust string, prev []string, b, check string) {
	c.doc.Cases = append(c.doc.Cases, Case{Name: name, Description: desc, Trust: trust, Previous: nonNil(prev), Bundle: b, Verdict: NotVerified, Check: check})
}

func (c *corpus) unreadable(name, desc, trust, b, refusal string) {
	c.doc.Cases = append(c.doc.Cases, Case{Name: name, Description: desc, Trust: trust, Previous: []string{}, Bundle: b, Verdict: NotVerified, Check: CheckRead, Refusal: refusal})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// edits are changes to bundle 1 made with the files in hand (anyone
// holding the bundle can make them; manifests recomputed where said).
func (c *corpus) edits(dev1 *bundletest.Chain) error {
	prev := []string{goodPath("dev1", 0)}
	type edit struct {
		name, desc, check string
		rehash            bool
		fn                func(b *bundle.Bundle) error
	}
	edits := []edit{
		{"baginfo.changed.rehashed", "bag-info.txt Bagging-Date changed, both manifests recomputed: BagIt passes, the seal names the old bytes", verify.CheckSealSubject, true,
			func(b *bundle.Bundle) error {
				info := string(b.Files[bundle.PathBagInfo])
				i := strings.Index(info, "Bagging-Date: ")
				if i < 0 {
					return errors.New("no Bagging-Date")
				}
				b.Files[bundle.PathBagInfo] = []byte(info[:i] + "Bagging-Date: 1999-12-31" + info[i+len("Bagging-Date: 2006-01-02"):])
				return nil
			}},
		{"manifest.line.changed", "one line of manifest-sha256.txt names another digest, tagmanifest recomputed", verify.CheckBagItManifest, false,
			func(b *bundle.Bundle) error {
				m := b.Files[bundle.PathManifest]
				if m[0] == '0' { // the first digest's first hex digit changed
					m[0] = '1'
				} else {
					m[0] = '0'
				}
				b.Files[bundle.PathManifest] = m
				rehashTags(b)
				return nil
			}},
		{"signature.high-s", "the seal signature's s replaced by n-s: the same signature mathematically, refused as a second spelling", verify.CheckSealSigners, true,
			func(b *bundle.Bundle) error {
				env, err := dsse.ParseEnvelope(b.Files[bundle.PathSeal])
				if err != nil {
					return err
				}
				if env.Signatures[0].Sig, err = highS(env.Signatures[0].Sig); err != nil {
					return err
				}
				b.Files[bundle.PathSeal], err = env.Marshal()
				return err
			}},
		{"signing-pem.dropped", "keys/signing.pem removed from a format 2 bundle, manifests recomputed", verify.CheckBundleCanonical, true,
			func(b *bundle.Bundle) error { delete(b.Files, bundle.PathSigningPEM); return nil }},
	}
	for _, e := range edits {
		b := bundletest.Clone(dev1.Bundles[1])
		if err := e.fn(b); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if e.rehash {
			if err := b.UpdateManifests(); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
		p := "tampered/" + e.name + ".tar"
		if err := c.addBundle(p, b); err != nil {
			return err
		}
		c.refused(e.name, e.desc, trustDev1, prev, p, e.check)
	}
	return nil
}

// rehashTags rewrites tagmanifest-sha256.txt over the tag files as they
// are (manifest-sha256.txt included, edited or not): "<hex>  <path>\n"
// for every file outside data/ but the tag manifest, sorted by path.
func rehashTags(b *bundle.Bundle) {
	var names []string
	for n := range b.Files {
		if !strings.HasPrefix(n, "data/") && n != bundle.PathTagManifest {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []byte
	for _, n := range names {
		sum := sha256.Sum256(b.Files[n])
		out = fmt.Appendf(out, "%x  %s\n", sum, n)
	}
	b.Files[bundle.PathTagManifest] = out
}

// highS returns the DER ECDSA P-256 signature with s replaced by n-s.
func highS(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return nil, err
	}
	sig.S = new(big.Int).Sub(elliptic.P256().Params().N, sig.S)
	return asn1.Marshal(sig)
}

// rotation is a device that rotated its signing key: a good chain across
// the rotation, and a bundle sealed afterwards by the revoked key.
func (c *corpus) rotation(ctx context.Context) error {
	ch, err := bundletest.NewChain(ctx, nil, 1, bundletest.Options{Site: "site1", Device: "dev3", Records: 6, PayloadSize: 48, KeyCreate: true})
	if err != nil {
		return err
	}
	if err := c.addTrust(trustRotated, ch.Trust); err != nil {
		return err
	}
	soft, ok := ch.Dev.(bundletest.Soft)
	if !ok {
		return errors.New("rotation needs the software device")
	}
	oldKey, oldID := soft.SigningKey, ch.Identity
	if err := ch.Rotate(ctx, bundletest.RotateOptions{}); err != nil {
		return err
	}
	rotated, err := ch.Next(ctx, 4)
	if err != nil {
		return err
	}
	r := verify.Verify(rotated, ch.Trust, ch.States[0])
	if !r.OK() {
		return fmt.Errorf("rotation bundle does not verify:\n%s", r)
	}
	// The revoked key seals the next bundle (a stolen key blob, say).
	soft.SigningKey, ch.Identity = oldKey, oldID
	revoked, err := ch.Next(ctx, 4)
	if err != nil {
		return err
	}
	g0, g1 := goodPath("dev3", 0), goodPath("dev3", 1)
	if err := c.addBundle(g0, ch.Bundles[0]); err != nil {
		return err
	}
	if err := c.addBundle(g1, rotated); err != nil {
		return err
	}
	const bad = "tampered/key.revoked.tar"
	if err := c.addBundle(bad, revoked); err != nil {
		return err
	}
	c.verified("good.rotation", "a bundle whose key.rotate and key.revoke records put a new signing key in force, sealed by the new key", trustRotated, []string{g0}, g1)
	c.refused("key.revoked", "a bundle sealed by the signing key a key.revoke record of the chain revoked", trustRotated, []string{g0, g1}, bad, verify.CheckKeysTrusted)
	return nil
}

// format1 copies the bundle sealed by the format 1 code and its trust file.
func (c *corpus) format1(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "v1.tar"))
	if err != nil {
		return err
	}
	t, err := os.ReadFile(filepath.Join(dir, "v1.trust.json"))
	if err != nil {
		return err
	}
	c.add(trustFormat1, t)
	const p = "good/format1.tar"
	c.add(p, b)
	c.verified("good.format1", "a format 1 bundle (predicate https://edgeseal.dev/seal/v1) as the format 1 code sealed it", trustFormat1, nil, p)
	return nil
}

// agentBundles are bundles the agent sealed with the TPM 2.0 reference
// simulator (real TPM structures, NV counter and clock), and one of them
// with a payload changed.
func (c *corpus) agentBundles(ctx context.Context) error {
	trust, raws, err := agentChain(ctx, "site2", "gw1", 2)
	if err != nil {
		return err
	}
	const trustAgent = "trust/site2-gw1.json"
	c.add(trustAgent, trust)
	var paths []string
	for i, raw := range raws {
		paths = append(paths, c.add(goodPath("gw1", i), raw))
	}
	c.verified("agent.single", "the first bundle of the agent itself, sealed with the TPM 2.0 reference simulator", trustAgent, nil, paths[0])
	c.verified("agent.chain", "the agent's second bundle, after its first", trustAgent, paths[:1], paths[1])
	c.refused("agent.replayed", "the agent's first bundle sent again after its second", trustAgent, paths, paths[0], verify.CheckCounterRising)
	b, err := bundle.ReadBytes(raws[1], bundle.DefaultLimits)
	if err != nil {
		return err
	}
	t := bundletest.Clone(b)
	for _, n := range t.Names() {
		if _, ok := bundle.PayloadDigestFromPath(n); ok {
			t.Files[n][len(t.Files[n])-2] ^= 0x01
			break
		}
	}
	if err := t.UpdateManifests(); err != nil {
		return err
	}
	const bad = "tampered/agent.payload.changed.tar"
	if err := c.addBundle(bad, t); err != nil {
		return err
	}
	c.refused("agent.payload.changed", "a payload of the agent's second bundle changed, manifests recomputed", trustAgent, paths[:1], bad, verify.CheckPayloadsDigest)
	return nil
}
