package swtpmtest

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// ekCertIndexECC is the NV index of the TCG ECC P-256 EK certificate.
const ekCertIndexECC = 0x01C0000A

// StartWithEKCert starts swtpm with a fresh state and gives its ECC
// P-256 EK (TCG default template) a certificate, as a TPM manufacturer
// does: swtpm_localca (a local CA: root, then issuing CA, created in a
// temporary directory) certifies the EK, and the certificate is written
// to the EK certificate's NV index (0x01C0000A). It returns the instance
// and the local CA's certificates (PEM: root and issuing CA), the bundle
// an archive's enroll.ek_ca names. Each call makes a new CA.
func StartWithEKCert(t testing.TB) (*Instance, []byte) {
	t.Helper()
	Need(t, "swtpm_localca")
	in := Start(t)
	ca := t.TempDir()
	conf := filepath.Join(ca, "localca.conf")
	opts := filepath.Join(ca, "localca.options")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", ca), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tr := rawTPM{conn}
	ek, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCEKTemplate),
	}.Execute(tr)
	if err != nil {
		t.Fatalf("swtpmtest: ek: %v", err)
	}
	_, _ = tpm2.FlushContext{FlushHandle: ek.ObjectHandle}.Execute(tr)
	pub, err := ek.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.CommandContext(ctx, "swtpm_localca", "--type", "ek",
		"--ek", fmt.Sprintf("x=%s,y=%s,id=secp256r1", hex.EncodeToString(pt.X.Buffer), hex.EncodeToString(pt.Y.Buffer)),
		"--dir", out, "--tpm-spec-family", "2.0", "--tpm-spec-level", "0", "--tpm-spec-revision", "164",
		"--tpm-manufacturer", "id:00001014", "--tpm-model", "swtpm", "--tpm-version", "id:20191023", "--tpm2",
		"--configfile", conf, "--optsfile", opts)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("swtpm_localca: %v: %s", err, b)
	}
	cert, err := os.ReadFile(filepath.Join(out, "ek.cert"))
	if err != nil {
		t.Fatal(err)
	}
	writeNV(t, tr, ekCertIndexECC, cert)
	var bundle []byte
	for _, f := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(ca, f))
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, b...)
	}
	return in, bundle
}

// writeNV defines an ordinary NV index readable with its own empty auth
// (as EK certificate indices are) and writes data to it as the owner.
func writeNV(t testing.TB, tr transport.TPM, index uint32, data []byte) {
	t.Helper()
	def := tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: tpm2.TPMHandle(index),
			NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{
				OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true,
				NT: tpm2.TPMNTOrdinary,
			},
			DataSize: uint16(len(data)),
		}),
	}
	if _, err := def.Execute(tr); err != nil {
		t.Fatalf("swtpmtest: define NV %#x: %v", index, err)
	}
	rp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(index)}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 512 {
		end := min(off+512, len(data))
		_, err := tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: rp.NVName},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data[off:end]},
			Offset:     uint16(off),
		}.Execute(tr)
		if err != nil {
			t.Fatalf("swtpmtest: write NV %#x: %v", index, err)
		}
	}
}

// rawTPM sends TPM commands on swtpm's command port (the plain command
// stream; the package tpm cannot be imported here, its tests import this
// package).
type rawTPM struct{ c net.Conn }

func (r rawTPM) Send(cmd []byte) ([]byte, error) {
	if err := r.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := r.c.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(r.c, hdr); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > 1<<16 {
		return nil, fmt.Errorf("swtpmtest: response of %d bytes", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(r.c, rsp[10:]); err != nil {
		return nil, err
	}
	return rsp, nil
}
