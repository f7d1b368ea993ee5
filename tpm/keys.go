package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/google/go-tpm/tpm2"
)

// ekCertIndexECC is the NV index of the TCG ECC P-256 EK certificate.
const ekCertIndexECC = 0x01C0000A

// primary is a created primary key.
type primary struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public []byte // TPMT_PUBLIC
	pub    *tpm2.TPMTPublic
}

func (t *TPM) createPrimary(hier tpm2.TPMHandle, tmpl tpm2.TPMTPublic) (*primary, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: hier, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(t.tr)
	if err != nil {
		return nil, fmt.Errorf("tpm: create primary: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		_ = t.flush(rsp.ObjectHandle)
		return nil, fmt.Errorf("tpm: create primary: %w", err)
	}
	return &primary{handle: rsp.ObjectHandle, name: rsp.Name, public: tpm2.Marshal(pub), pub: pub}, nil
}

// eccPublicKey converts an ECC P-256 public area to a Go key.
func eccPublicKey(pub *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	if pub.Type != tpm2.TPMAlgECC {
		return nil, fmt.Errorf("not an ECC key")
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, err
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("curve %v, want P-256", parms.CurveID)
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		return nil, err
	}
	if len(pt.X.Buffer) > 32 || len(pt.Y.Buffer) > 32 {
		return nil, fmt.Errorf("point coordinate too long")
	}
	raw := make([]byte, 65)
	raw[0] = 4
	copy(raw[33-len(pt.X.Buffer):33], pt.X.Buffer)
	copy(raw[65-len(pt.Y.Buffer):], pt.Y.Buffer)
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
}

// initEK creates the EK to read its public key, and reads its certificate
// if the manufacturer stored one.
func (t *TPM) initEK(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ek, err := t.createPrimary(tpm2.TPMRHEndorsement, tpm2.ECCEKTemplate)
	if err != nil {
		return fmt.Errorf("tpm: ek: %w", err)
	}
	if err := t.flush(ek.handle); err != nil {
		return err
	}
	key, err := eccPublicKey(ek.pub)
	if err != nil {
		return fmt.Errorf("tpm: ek: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return fmt.Errorf("tpm: ek: %w", err)
	}
	t.id.EKPublic = der
	cert, err := t.readNV(ekCertIndexECC)
	switch {
	case err == nil && len(cert) > 0:
		t.id.EKCert = cert
	case err != nil && !errors.Is(err, tpm2.TPMRCHandle):
		t.log.Warn("tpm: cannot read EK certificate", "err", err)
	}
	return nil
}

// readNV reads a whole ordinary NV index with its own (empty) auth.
func (t *TPM) readNV(index uint32) ([]byte, error) {
	h := tpm2.TPMHandle(index)
	pubRsp, err := tpm2.NVReadPublic{NVIndex: h}.Execute(t.tr)
	if err != nil {
		return nil, err
	}
	pub, err := pubRsp.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	const chunk = 512
	var out []byte
	for off := 0; off < int(pub.DataSize); off += chunk {
		n := min(chunk, int(pub.DataSize)-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: h, Name: pubRsp.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: h, Name: pubRsp.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(t.tr)
		if err != nil {
			return nil, err
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// ensureAK loads the AK if it is not loaded. The AK is a primary, so the
// same template gives the same key on every call.
func (t *TPM) ensureAK() error {
	if t.ak != 0 {
		return nil
	}
	ak, err := t.createPrimary(tpm2.TPMRHEndorsement, akTemplate())
	if err != nil {
		return fmt.Errorf("tpm: ak: %w", err)
	}
	if t.akPub != nil && !bytes.Equal(t.akPub, ak.public) {
		_ = t.flush(ak.handle)
		return fmt.Errorf("tpm: ak: public key changed while open (endorsement hierarchy cleared?)")
	}
	t.ak, t.akName, t.akPub = ak.handle, ak.name, ak.public
	return nil
}

// initKeys creates the signing key and data key under the SRK if their
// blobs are absent and Options.Create allows it, otherwise reloads them,
// and leaves the signing key and the AK loaded. Object slots in use: at
// most three.
func (t *TPM) initKeys(ctx context.Context) error {
	signBytes, err := readState(t.stateDir, signKeyFile)
	if err != nil {
		return err
	}
	dataBytes, err := readState(t.stateDir, dataKeyFile)
	if err != nil {
		return err
	}
	if signBytes != nil {
		if t.signKey, err = parseKeyFile(signKeyFile, keyKindSigning, signBytes); err != nil {
			return err
		}
	}
	if dataBytes != nil {
		if t.dataKey, err = parseKeyFile(dataKeyFile, keyKindData, dataBytes); err != nil {
			return err
		}
	}
	if err := t.checkEnrolled(signBytes, dataBytes); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	srk, err := t.createPrimary(tpm2.TPMRHOwner, tpm2.ECCSRKTemplate)
	if err != nil {
		return fmt.Errorf("tpm: srk: %w", err)
	}
	defer func() { _ = t.flush(srk.handle) }()

	// TPM2_Create needs a free slot: make the data key while only the SRK
	// (and perhaps the AK) is loaded.
	if t.dataKey == nil {
		if t.dataKey, err = t.createDataKey(srk); err != nil {
			return err
		}
		t.log.Info("tpm: created sealed data key", "pcrs", t.dataKey.file.PCRs)
	}

	if t.signKey == nil {
		if t.signKey, err = t.createSigningKey(srk); err != nil {
			return err
		}
		t.log.Info("tpm: created signing key", "pcrs", t.signKey.file.PCRs)
	} else {
		if !slices.Equal(t.signKey.file.PCRs, t.pcrs) {
			t.log.Warn("tpm: signing key is bound to other PCRs than configured; re-bind to change", "bound", t.signKey.file.PCRs, "configured", t.pcrs)
		}
		if t.sign, t.signName, err = t.load(srk, t.signKey); err != nil {
			return t.loadFailed(keyKindSigning, err)
		}
	}
	return nil
}

// load loads a key blob under the SRK.
func (t *TPM) load(srk *primary, k *loadedKey) (tpm2.TPMHandle, tpm2.TPM2BName, error) {
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: k.file.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](k.file.Public),
	}.Execute(t.tr)
	if err != nil {
		return 0, tpm2.TPM2BName{}, err
	}
	return rsp.ObjectHandle, rsp.Name, nil
}

// boundKey creates a key under srk whose policy binds it to the current
// values of t.pcrs.
func (t *TPM) boundKey(srk *primary, kind string, tmpl func([]byte) tpm2.TPMTPublic, sensitive []byte) (*loadedKey, error) {
	values, err := t.readPCRs(t.pcrs)
	if err != nil {
		return nil, err
	}
	pkArea, pkRef, err := t.keyPolicy()
	if err != nil {
		return nil, fmt.Errorf("tpm: %s key: pcr policy: %w", kind, err)
	}
	var policy []byte
	if pkArea != nil {
		policy = attest.PolicyAuthorizeDigest(attest.Name(pkArea), pkRef)
	} else if policy, err = policyPCRDigest(t.pcrs, values); err != nil {
		return nil, fmt.Errorf("tpm: %s key: %w", kind, err)
	}
	cmd := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(tmpl(policy)),
	}
	if sensitive != nil {
		cmd.InSensitive = tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: sensitive}),
		}}
	}
	rsp, err := cmd.Execute(t.tr)
	if err != nil {
		return nil, fmt.Errorf("tpm: create %s key: %w", kind, err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("tpm: create %s key: %w", kind, err)
	}
	f := keyFile{
		V: 1, Kind: kind,
		Public:    tpm2.Marshal(pub),
		Private:   slices.Clone(rsp.OutPrivate.Buffer),
		PCRs:      slices.Clone(t.pcrs),
		PCRValues: values,
	}
	if pkArea != nil {
		f.V, f.PolicyKey, f.PolicyRef = 2, pkArea, pkRef
	}
	// Through the parser, so that a created key is what a reload sees.
	b, err := json.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("tpm: create %s key: %w", kind, err)
	}
	k, err := parseKeyFile("new "+kind+" key", kind, b)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// createSigningKey creates, loads, certifies and saves a new signing key.
func (t *TPM) createSigningKey(srk *primary) (*loadedKey, error) {
	k, err := t.boundKey(srk, keyKindSigning, signingTemplate, nil)
	if err != nil {
		return nil, err
	}
	h, name, err := t.load(srk, k)
	if err != nil {
		return nil, fmt.Errorf("tpm: load new signing key: %w", err)
	}
	old, oldName := t.sign, t.signName
	t.sign, t.signName = h, name
	prev := t.signKey
	t.signKey = k
	if err := t.certifySigning(); err != nil {
		_ = t.flush(h)
		t.sign, t.signName, t.signKey = old, oldName, prev
		return nil, err
	}
	if old != 0 {
		_ = t.flush(old)
	}
	return k, nil
}

// certifySigning has the AK certify the loaded signing key and saves the
// key file with the certification.
func (t *TPM) certifySigning() error {
	if err := t.ensureAK(); err != nil {
		return err
	}
	rsp, err := tpm2.Certify{
		ObjectHandle: tpm2.AuthHandle{Handle: t.sign, Name: t.signName, Auth: tpm2.PasswordAuth(nil)},
		SignHandle:   tpm2.AuthHandle{Handle: t.ak, Name: t.akName, Auth: tpm2.PasswordAuth(nil)},
		InScheme:     ecdsaScheme(),
	}.Execute(t.tr)
	if err != nil {
		return fmt.Errorf("tpm: certify signing key: %w", err)
	}
	t.signKey.file.CertifyAttest = slices.Clone(rsp.CertifyInfo.Bytes())
	t.signKey.file.CertifySig = tpm2.Marshal(&rsp.Signature)
	return writeJSON(t.stateDir, signKeyFile, &t.signKey.file)
}

// createDataKey seals 32 random bytes (or Options.DataKey) under the SRK
// and saves the blob.
func (t *TPM) createDataKey(srk *primary) (*loadedKey, error) {
	secret, err := t.newDataKeySecret()
	if err != nil {
		return nil, err
	}
	k, err := t.boundKey(srk, keyKindData, sealTemplate, secret)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(t.stateDir, dataKeyFile, &k.file); err != nil {
		return nil, err
	}
	t.createdDataKey = secret
	return k, nil
}

// RotateSigningKey re-binds: it creates a new signing key under the
// current PCR values, has the AK certify it, and replaces the saved one
// (the old file is kept as signing-key.json.old). The caller journals the
// rotation; the returned Identity carries the new KeyID.
func (t *TPM) RotateSigningKey(ctx context.Context) (Identity, error) {
	if err := t.lock(ctx); err != nil {
		return Identity{}, err
	}
	defer t.unlock()
	// Free a slot: AK (reloaded by certify), SRK, new key, old key would be 4.
	if t.ak != 0 {
		if err := t.flush(t.ak); err != nil {
			return Identity{}, err
		}
		t.ak = 0
	}
	if t.sign != 0 {
		if err := t.flush(t.sign); err != nil {
			return Identity{}, err
		}
		t.sign = 0
	}
	old := t.signKey
	srk, err := t.createPrimary(tpm2.TPMRHOwner, tpm2.ECCSRKTemplate)
	if err != nil {
		return Identity{}, fmt.Errorf("tpm: srk: %w", err)
	}
	k, err := t.boundKey(srk, keyKindSigning, signingTemplate, nil)
	if err != nil {
		_ = t.flush(srk.handle)
		return Identity{}, err
	}
	h, name, err := t.load(srk, k)
	_ = t.flush(srk.handle)
	if err != nil {
		return Identity{}, fmt.Errorf("tpm: load new signing key: %w", err)
	}
	if err := writeJSON(t.stateDir, signKeyFile+".old", &old.file); err != nil {
		_ = t.flush(h)
		return Identity{}, err
	}
	t.sign, t.signName, t.signKey = h, name, k
	if err := t.certifySigning(); err != nil {
		// Certification failed: go back to the old key on next Open.
		_ = writeJSON(t.stateDir, signKeyFile, &old.file)
		t.signKey = old
		_ = t.flush(h)
		t.sign = 0
		return Identity{}, err
	}
	t.setSigningIdentity()
	t.log.Warn("tpm: signing key rotated", "key_id", t.id.KeyID, "pcrs", k.file.PCRs)
	return t.Identity(), nil
}

// certifyValid reports whether the saved certification of the signing key
// is a valid TPM2_Certify of it by the current AK.
func (t *TPM) certifyValid() bool {
	f := t.signKey.file
	if len(f.CertifyAttest) == 0 {
		return false
	}
	akPub, err := tpm2.Unmarshal[tpm2.TPMTPublic](t.akPub)
	if err != nil {
		return false
	}
	ak, err := eccPublicKey(akPub)
	if err != nil {
		return false
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](f.CertifySig)
	if err != nil {
		return false
	}
	der, err := signatureDER(sig)
	if err != nil {
		return false
	}
	d := sha256.Sum256(f.CertifyAttest)
	if !ecdsa.VerifyASN1(ak, d[:], der) {
		return false
	}
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](f.CertifyAttest)
	if err != nil || att.Type != tpm2.TPMSTAttestCertify {
		return false
	}
	ci, err := att.Attested.Certify()
	if err != nil {
		return false
	}
	name, err := tpm2.ObjectName(&t.signKey.public)
	return err == nil && bytes.Equal(ci.Name.Buffer, name.Buffer)
}
