package verify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
)

// sealSigners: the envelope holds exactly one signature, the sealing
// key's, under the statement's key id, in DER (low s in format 2).
func (v *verifier) sealSigners() error {
	if err := v.needPred(); err != nil {
		return err
	}
	sigs := v.env.Signatures
	if len(sigs) != 1 {
		ids := make([]string, len(sigs))
		for i, s := range sigs {
			ids[i] = fmt.Sprintf("%.80q", s.KeyID)
		}
		return fmt.Errorf("%d signatures (keyids %s), want exactly the sealing key's one", len(sigs), strings.Join(ids, ", "))
	}
	if sigs[0].KeyID != v.pred.KeyID {
		return fmt.Errorf("signature keyid %.80q, the statement's key is %s", sigs[0].KeyID, v.pred.KeyID)
	}
	return bundle.CheckSealSig(sigs[0].Sig, bundle.FormatOf(v.st.PredicateType) >= bundle.FormatV2)
}

// sealSubjectsV2 is seal.subject for format 2: the subjects name exactly
// SealSubjectNames of the bundle's files, with their digests.
func (v *verifier) sealSubjectsV2() error {
	var errs []string
	want := bundle.SealSubjectNames(v.b.Files)
	got := make([]string, len(v.st.Subject))
	for i, s := range v.st.Subject {
		got[i] = s.Name
		sum, ok := v.sum(s.Name)
		switch {
		case !ok:
			errs = append(errs, s.Name+" is sealed but missing")
		case s.Digest["sha256"] != hexSum(sum):
			errs = append(errs, fmt.Sprintf("%s has sha256 %s, the seal says %s", s.Name, hexSum(sum), s.Digest["sha256"]))
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			errs = append(errs, n+" is not sealed")
		}
	}
	return joinErrs(errs)
}

// bundleCanonical checks what the format version fixes beyond the seal:
// the Bag-Software-Agent, keys/signing.pem (format 2: required, the
// signing key's SigningPEM; format 1: absent), no encrypted payloads
// (their bytes are bound by nothing the device signed), and
// keys/ek.crt present exactly when the trust file has an EK certificate.
func (v *verifier) bundleCanonical() error {
	if err := v.needPred(); err != nil {
		return err
	}
	var errs []string
	format := bundle.FormatOf(v.st.PredicateType)
	agent := bundle.SoftwareAgent
	if format == bundle.FormatV2 {
		agent = bundle.SoftwareAgentV2
	}
	if info, err := bundle.ParseBagInfo(v.b.Files[bundle.PathBagInfo]); err != nil {
		errs = append(errs, err.Error())
	} else if info["Bag-Software-Agent"] != agent {
		errs = append(errs, fmt.Sprintf("Bag-Software-Agent %.40q, a format %d seal needs %q", info["Bag-Software-Agent"], format, agent))
	}
	pemFile, hasPEM := v.b.Files[bundle.PathSigningPEM]
	switch {
	case format == bundle.FormatV1 && hasPEM:
		errs = append(errs, bundle.PathSigningPEM+" in a format 1 bundle")
	case format == bundle.FormatV2 && !hasPEM:
		errs = append(errs, "missing "+bundle.PathSigningPEM)
	case format == bundle.FormatV2:
		if want, err := bundle.SigningPEM(v.b.Files[bundle.PathSigningPub]); err != nil {
			errs = append(errs, err.Error())
		} else if string(pemFile) != string(want) {
			errs = append(errs, bundle.PathSigningPEM+" is not the PEM of keys/signing.pub")
		}
	}
	if refs, _, err := v.payloadRefs(); err == nil && v.recsErr == nil {
		for _, i := range v.pays {
			if f := &v.files[i]; f.enc {
				if r, ok := refs[f.digest]; !ok || r.cipher == nil {
					errs = append(errs, f.name+": an encrypted payload no encrypted export record names")
				}
			}
		}
	} else {
		for _, i := range v.pays {
			if f := &v.files[i]; f.enc {
				errs = append(errs, f.name+": an encrypted payload in a bundle whose records do not parse")
			}
		}
	}
	if v.t != nil {
		if _, has := v.b.Files[bundle.PathEKCert]; has != (len(v.t.EKCert) > 0) {
			errs = append(errs, fmt.Sprintf("%s present %v, the trust file has an EK certificate %v", bundle.PathEKCert, has, len(v.t.EKCert) > 0))
		}
	}
	if len(errs) == 0 && format == bundle.FormatV1 {
		v.note = "format 1 (legacy): bag-info.txt and the key and attestation files are not sealed"
	}
	return joinErrs(errs)
}
