package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// BagItDeclaration is the exact content of bagit.txt.
const BagItDeclaration = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

// SoftwareAgent is written to bag-info.txt of bundles of format 1;
// SoftwareAgentV2 (unique.go) names format 2.
const SoftwareAgent = "edgeseal bundle/1"

var bagInfoKeys = []string{"Bag-Software-Agent", "Bagging-Date", "Checkpoint-Size", "Origin", "Payload-Oxum"}

// bagInfo renders bag-info.txt with its keys in a fixed order.
func bagInfo(agent, origin string, size uint64, at time.Time, oxum string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Bag-Software-Agent: %s\n", agent)
	fmt.Fprintf(&b, "Bagging-Date: %s\n", at.UTC().Format(time.DateOnly))
	fmt.Fprintf(&b, "Checkpoint-Size: %d\n", size)
	fmt.Fprintf(&b, "Origin: %s\n", origin)
	fmt.Fprintf(&b, "Payload-Oxum: %s\n", oxum)
	return b.Bytes()
}

// ParseBagInfo reads bag-info.txt as written by bagInfo: exactly the known
// keys, once each, in order.
func ParseBagInfo(b []byte) (map[string]string, error) {
	if len(b) == 0 || b[len(b)-1] != '\n' || len(b) > 4096 {
		return nil, wire.FormatErr("bagit", "bag-info.txt not newline-terminated or too long")
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) != len(bagInfoKeys) {
		return nil, wire.FormatErr("bagit", "bag-info.txt has %d lines", len(lines))
	}
	out := make(map[string]string, len(lines))
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ": ")
		if !ok || k != bagInfoKeys[i] || v == "" {
			return nil, wire.FormatErr("bagit", "bag-info.txt line %d: %.80q", i+1, l)
		}
		out[k] = v
	}
	return out, nil
}

// payloadOxum is "<octets>.<streams>" over the files under data/.
func payloadOxum(files map[string][]byte) string {
	var octets, n int
	for name, data := range files {
		if strings.HasPrefix(name, "data/") {
			octets += len(data)
			n++
		}
	}
	return strconv.Itoa(octets) + "." + strconv.Itoa(n)
}

// manifest renders "<hex>  <path>\n" lines sorted by path for the given
// names, using sums where present.
func manifest(files map[string][]byte, names []string, sums map[string][32]byte) []byte {
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		s, ok := sums[n]
		if !ok {
			s = sha256.Sum256(files[n])
		}
		b.WriteString(hex.EncodeToString(s[:]))
		b.WriteString("  ")
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ScanManifest reads a manifest written by manifest (sorted unique
// paths, lowercase hex, two spaces), calling fn for each line, and
// returns the number of lines. It fails on the first bad line; fn may
// have seen the lines before it.
func ScanManifest(b []byte, fn func(name []byte, sum *[32]byte)) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if b[len(b)-1] != '\n' {
		return 0, wire.FormatErr("bagit", "manifest not newline-terminated")
	}
	var prev []byte
	var sum [32]byte
	n := 0
	for rest := b[:len(b)-1]; ; n++ {
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		sp := bytes.Index(l, twoSpaces)
		if sp != 64 || !strict.DecodeHex(sum[:], l[:sp]) || bytes.Compare(l[sp+2:], prev) <= 0 {
			return 0, wire.FormatErr("bagit", "manifest line %d: %.120q", n+1, l)
		}
		prev = l[sp+2:]
		fn(prev, &sum)
		if rest == nil {
			return n + 1, nil
		}
	}
}

var twoSpaces = []byte("  ")

func dataNames(files map[string][]byte) []string {
	var out []string
	for n := range files {
		if strings.HasPrefix(n, "data/") {
			out = append(out, n)
		}
	}
	return out
}

func tagNames(files map[string][]byte) []string {
	var out []string
	for n := range files {
		if !strings.HasPrefix(n, "data/") && n != PathTagManifest {
			out = append(out, n)
		}
	}
	return out
}

// UpdateManifests recomputes Payload-Oxum in bag-info.txt and both
// manifests after files changed. Other bag-info fields are kept.
func (b *Bundle) UpdateManifests() error {
	if err := b.updateBagInfo(); err != nil {
		return err
	}
	b.manifests(nil)
	return nil
}

// updateBagInfo rewrites bagit.txt and bag-info.txt with the
// Payload-Oxum of the files under data/, keeping the other fields.
func (b *Bundle) updateBagInfo() error {
	info, err := ParseBagInfo(b.Files[PathBagInfo])
	if err != nil {
		return err
	}
	size, err := strconv.ParseUint(info["Checkpoint-Size"], 10, 64)
	if err != nil {
		return wire.FormatErr("bagit", "checkpoint size %.30q", info["Checkpoint-Size"])
	}
	date, err := time.Parse(time.DateOnly, info["Bagging-Date"])
	if err != nil {
		return wire.FormatErr("bagit", "bagging date %.30q", info["Bagging-Date"])
	}
	b.bagInfo(info["Bag-Software-Agent"], info["Origin"], size, date)
	return nil
}

// bagInfo writes bagit.txt and bag-info.txt.
func (b *Bundle) bagInfo(agent, origin string, size uint64, at time.Time) {
	b.Files[PathBagIt] = []byte(BagItDeclaration)
	b.Files[PathBagInfo] = bagInfo(agent, origin, size, at, payloadOxum(b.Files))
}

// manifests writes the two manifests.
func (b *Bundle) manifests(sums map[string][32]byte) {
	b.Files[PathManifest] = manifest(b.Files, dataNames(b.Files), sums)
	b.Files[PathTagManifest] = manifest(b.Files, tagNames(b.Files), nil)
}
