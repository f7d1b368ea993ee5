package evidence

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/dsse"
)

// VERIFY.md: the checks of the pack as literal commands of standard tools
// (bash, coreutils, grep, openssl, tpm2_checkquote), generated for this
// pack's files. Every command exits non-zero when its check fails.

// safeLiteral is what may appear inside single quotes and a JSON string
// without escaping.
var safeLiteral = regexp.MustCompile(`^[A-Za-z0-9._:@/+=-]{1,256}$`)

func verifyMD(idx *Index, exps []packedExport) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Verifying this evidence pack\n\n")
	w("This folder is a BagIt 1.0 bag (RFC 8493) built by `edgeseal evidence`. ")
	w("It holds the proofs of %d export(s): %s.\n\n", len(idx.Exports), idx.Selection)
	w("The short way checks everything below and more:\n\n```sh\nedgeseal verify .\n```\n\n")
	w("Each step below is a literal command of standard tools (bash, coreutils, grep, openssl 3, ")
	w("tpm2_checkquote of tpm2-tools). Run the blocks in order, in one bash shell, from this folder; ")
	w("a command exits non-zero when its check fails, and `set -e` stops at the first.\n\n")
	w("What the standard tools cannot check, `edgeseal verify` does: that the AK and signing key are ")
	w("the trust file's TPM keys (TPM2_Certify, key attributes, PCR policy), that the quoted PCR values ")
	w("are the approved ones, the consistency proofs between archive checkpoints, the signed policies, ")
	w("and that every file of an export's folder is the one its proof.json carries.\n\n")
	w("## 0. A scratch folder\n\n```sh\nset -euo pipefail\nT=$(mktemp -d)\n```\n\n")
	w("## 1. The bag: every file is the one packed\n\n")
	w("```sh\nsha256sum -c --quiet tagmanifest-sha256.txt\nsha256sum -c --quiet manifest-sha256.txt\n```\n\n")
	w("## 2. The archive's key and its signed checkpoints\n\n")
	w("The key id to compare with the one the archive's owner publishes (`%s`):\n\n", idx.Archive.KeyID)
	if len(idx.Archive.EarlierKeys) > 0 {
		w("The archive has rotated its key since some of these receipts and checkpoints were signed: ")
		w("they are signed by the earlier keys in `data/archive/keys/`. That each earlier key is vouched for by ")
		w("the newer ones (the key announcements `keyChain` of `%s`, each signed by the key it retires and ", PathIndex)
		w("the key it announces, leading to the key above) is checked by `edgeseal verify`.\n\n")
	}
	w("```sh\ntest \"sha256:$(openssl pkey -pubin -in %s -outform DER | sha256sum | cut -c1-64)\" = '%s'\n", idx.Archive.Key, idx.Archive.KeyID)
	for _, k := range idx.Archive.EarlierKeys {
		w("test \"sha256:$(openssl pkey -pubin -in %s -outform DER | sha256sum | cut -c1-64)\" = '%s'\n", k.File, k.Name)
	}
	for _, c := range idx.Archive.Checkpoints {
		w("head -n 3 %s > \"$T/note.body\"\n", c.File)
		w("sed -n 5p %s | cut -d' ' -f3 | openssl base64 -d -A | tail -c 64 > \"$T/note.sig\"\n", c.File)
		w("openssl pkeyutl -verify -pubin -inkey %s -rawin -in \"$T/note.body\" -sigfile \"$T/note.sig\"\n", keyFile(idx, c.KeyID))
	}
	w("```\n\n")
	if len(idx.Archive.Consistency) > 0 {
		w("The consistency proofs between these checkpoints (in `%s`) are checked by `edgeseal verify`.\n\n", PathIndex)
	}
	devices := map[string]string{}
	for _, d := range idx.Devices {
		devices[d.Name] = d.File
	}
	for i, e := range exps {
		exportSteps(w, i+1, e, idx, devices[e.proof.Device])
	}
	w("## Clean up\n\n```sh\nrm -r \"$T\"\n```\n")
	return b.Bytes()
}

func exportSteps(w func(string, ...any), n int, e packedExport, idx *Index, trust string) {
	pr := e.proof
	t := fmt.Sprintf("\"$T/%03d", n)
	w("## %d. Export %s\n\n", n+2, quoteMD(pr.ExportID))
	w("Principal %s, device %s, record %d, sealed in checkpoint %d of the device, ", quoteMD(pr.Principal), pr.Device, pr.Records[0].Seq, e.sealed.Size)
	w("archived as entry %d of the archive log (checkpoint %d).\n\n", e.receipt.LogIndex, e.cp.Size)
	w("```sh\nE=%s\n", e.dir)
	if e.format == bundle.FormatV2 {
		w("# the seal: the statement signed by the device's signing key\n")
		w("cut -d'\"' -f4 \"$E/seal.dsse.json\" | openssl base64 -d -A > %s.statement\"\n", t)
		w("cut -d'\"' -f18 \"$E/seal.dsse.json\" | openssl base64 -d -A > %s.seal.sig\"\n", t)
		w("{ printf 'DSSEv1 %d %s %%d ' \"$(wc -c < %s.statement\")\"; cat %s.statement\"; } > %s.seal.pae\"\n",
			len(dsse.PayloadTypeInToto), dsse.PayloadTypeInToto, t, t, t)
		w("openssl dgst -sha256 -verify \"$E/keys/signing.pem\" -signature %s.seal.sig\" %s.seal.pae\"\n", t, t)
		w("# the key and quote files are those the statement names\n")
		w("for f in keys/signing.pem keys/ak.pem keys/ak.pub attestation/quote.msg attestation/quote.sig attestation/quote.pcrs; do\n")
		w("  grep -qF \"{\\\"digest\\\":{\\\"sha256\\\":\\\"$(sha256sum < \"$E/$f\" | cut -c1-64)\\\"},\\\"name\\\":\\\"$f\\\"}\" %s.statement\"\n", t)
		w("done\n")
		w("# the AK is the one in the device's trust file\n")
		w("grep -qF \"\\\"$(openssl base64 -A < \"$E/keys/ak.pub\")\\\"\" %s\n", trust)
		w("# the quote: signed by the AK over SHA-256 of the checkpoint the statement seals\n")
		w("printf '\"checkpoint\":\"%%s\\\\n%%s\\\\n%%s\\\\n\"' $(cat \"$E/checkpoint.txt\") > %s.cp\"\n", t)
		w("grep -qF -f %s.cp\" %s.statement\"\n", t, t)
	} else {
		w("# a format 1 bundle: its seal and key files are checked by edgeseal verify only\n")
	}
	w("tpm2_checkquote -u \"$E/keys/ak.pem\" -m \"$E/attestation/quote.msg\" -s \"$E/attestation/quote.sig\" \\\n")
	w("  -f \"$E/attestation/quote.pcrs\" -g sha256 -q \"$(sha256sum < \"$E/checkpoint.txt\" | cut -c1-64)\" > /dev/null\n")
	w("# the record is leaf %d of that checkpoint (RFC 6962 inclusion proof)\n", pr.Records[0].Seq)
	fold(w, t, "\"$E/record.json\"", merkleSides(pr.Records[0].Inclusion, pr.Records[0].Seq, e.sealed.Size))
	w("test \"$(openssl base64 -A < %s.h\")\" = \"$(sed -n 3p \"$E/checkpoint.txt\")\"\n", t)
	w("# the record is the export's, and the payload the one it names\n")
	if safeLiteral.MatchString(pr.ExportID) && safeLiteral.MatchString(pr.Principal) {
		w("grep -qF '\"exportId\":\"%s\"' \"$E/record.json\"\n", pr.ExportID)
		w("grep -qF '{\"actor\":{\"id\":\"%s\",' \"$E/record.json\"\n", pr.Principal)
	}
	switch {
	case pr.Payload != nil && e.export != nil && e.export.PayloadCipher != nil:
		w("# the payload is encrypted: the file is the ciphertext the record's payloadCipher names\n")
		w("grep -qF \"\\\"digest\\\":\\\"sha256:$(sha256sum < \"$E/payload\" | cut -c1-64)\\\"\" \"$E/record.json\"\n")
		if e.plaintext != "" {
			w("# the plaintext the archive decrypted is the payload the record names\n")
			w("grep -qF \"\\\"digest\\\":\\\"sha256:$(sha256sum < \"$E/%s\" | cut -c1-64)\\\"\" \"$E/record.json\"\n", PlaintextFile)
			w("grep -qF \"\\\"size\\\":$(wc -c < \"$E/%s\")}\" \"$E/record.json\"\n", PlaintextFile)
		}
	case pr.Payload != nil:
		w("grep -qF \"\\\"digest\\\":\\\"sha256:$(sha256sum < \"$E/payload\" | cut -c1-64)\\\"\" \"$E/record.json\"\n")
		w("grep -qF \"\\\"size\\\":$(wc -c < \"$E/payload\")}\" \"$E/record.json\"\n")
	default:
		w("# the payload was purged: a retention.purge record of its proof names it (edgeseal verify)\n")
	}
	rt := archivesig.ReceiptPayloadType
	w("# the receipt: signed by the archive key, for this checkpoint of this device\n")
	w("cut -d'\"' -f4 \"$E/receipt.dsse.json\" | openssl base64 -d -A > %s.receipt\"\n", t)
	w("cut -d'\"' -f18 \"$E/receipt.dsse.json\" | openssl base64 -d -A > %s.receipt.sig\"\n", t)
	w("{ printf 'DSSEv1 %d %s %%d ' \"$(wc -c < %s.receipt\")\"; cat %s.receipt\"; } > %s.receipt.pae\"\n", len(rt), rt, t, t, t)
	w("openssl pkeyutl -verify -pubin -inkey %s -rawin -in %s.receipt.pae\" -sigfile %s.receipt.sig\"\n", keyFile(idx, e.keyID()), t, t)
	w("grep -qF \"\\\"checkpointRoot\\\":\\\"sha256:$(sed -n 3p \"$E/checkpoint.txt\" | openssl base64 -d -A | od -An -v -tx1 | tr -d ' \\n')\\\",\\\"checkpointSize\\\":$(sed -n 2p \"$E/checkpoint.txt\"),\\\"device\\\":\\\"%s\\\"\" %s.receipt\"\n", pr.Device, t)
	note := fmt.Sprintf("data/archive/checkpoints/%d.note", e.cp.Size)
	w("# its log entry is leaf %d of the archive checkpoint of size %d\n", e.receipt.LogIndex, e.cp.Size)
	w("grep -qF \"$(sed 's/^{//; s/}$//' \"$E/archive-entry.json\")\" %s.receipt\"\n", t)
	w("printf '\"archiveCheckpoint\":\"%%s\\\\n%%s\\\\n%%s\\\\n' $(head -n 3 %s) > %s.acp\"\n", note, t)
	w("grep -qF -f %s.acp\" %s.receipt\"\n", t, t)
	fold(w, t, "\"$E/archive-entry.json\"", merkleSides(e.receipt.InclusionProof, e.receipt.LogIndex, e.cp.Size))
	w("test \"$(openssl base64 -A < %s.h\")\" = \"$(sed -n 3p %s)\"\n", t, note)
	w("```\n\n")
}

// keyFile is the PEM file of the archive key id: an earlier key's, else
// the pack's.
func keyFile(idx *Index, id string) string {
	for _, k := range idx.Archive.EarlierKeys {
		if k.Name == id {
			return k.File
		}
	}
	return idx.Archive.Key
}

// keyID is the id of the archive key that signed the export's receipt.
func (pe packedExport) keyID() string {
	if k, err := parseKey(pe.proof.ArchiveKey); err == nil {
		return archivesig.ArchiveKeyID(k)
	}
	return ""
}

// fold writes the commands that hash leaf and fold it with the proof.
func fold(w func(string, ...any), t, leaf string, steps []step) {
	w("{ printf '\\000'; cat %s; } | openssl dgst -sha256 -binary > %s.h\"\n", leaf, t)
	for _, s := range steps {
		sib := fmt.Sprintf("printf '%%s' '%s' | openssl base64 -d -A", s.b64)
		if s.left {
			w("{ printf '\\001'; %s; cat %s.h\"; } | openssl dgst -sha256 -binary > %s.n\" && mv %s.n\" %s.h\"\n", sib, t, t, t, t)
		} else {
			w("{ printf '\\001'; cat %s.h\"; %s; } | openssl dgst -sha256 -binary > %s.n\" && mv %s.n\" %s.h\"\n", t, sib, t, t, t)
		}
	}
}

// step is one hash of an inclusion proof and its side.
type step struct {
	b64  string
	left bool // the sibling is on the left: H(0x01 || sibling || node)
}

// merkleSides tells, for each hash of an RFC 6962 inclusion proof of leaf
// index in a tree of size, which side it goes (RFC 9162 section 2.1.3.2).
func merkleSides(proof [][]byte, index, size uint64) []step {
	var out []step
	fn, sn := index, size-1
	for _, p := range proof {
		s := step{b64: b64(p)}
		if fn&1 == 1 || fn == sn {
			s.left = true
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		}
		fn >>= 1
		sn >>= 1
		out = append(out, s)
	}
	return out
}

func b64(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

// quoteMD renders free text for markdown prose.
func quoteMD(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return "`" + strings.NewReplacer("`", "'", "\n", " ").Replace(s) + "`"
}
