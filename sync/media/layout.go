package media

import (
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/sync"
)

const (
	// IndexFile is the index the agent writes beside the bundles, last.
	IndexFile = "index.json"
	// BundleSuffix names an exported bundle: <outbox id>.bundle.tar.
	BundleSuffix = ".bundle.tar"
	// Format is Index.Format.
	Format = "edgeseal-media/v1"
	// ReceiptsDir is the folder the archive writes its answers to, inside
	// the medium's folder.
	ReceiptsDir = "receipts"
	// ReceiptSuffix and RejectionSuffix name the archive's answer to the
	// bundle file <f>.tar: <f>.receipt.json or <f>.rejection.json.
	ReceiptSuffix   = ".receipt.json"
	RejectionSuffix = ".rejection.json"
	// MaxReplySize bounds a receipt or rejection file read back.
	MaxReplySize = archivesig.MaxReceiptSize
	// MaxEntries bounds the entries of a folder of the medium read: far
	// more than a FAT32 folder holds.
	MaxEntries = 1 << 20
)

// bundleExt is what the archive takes as a bundle file: any *.tar, so
// that a medium filled by hand with bundle.FileName names imports too.
const bundleExt = ".tar"

// Index is IndexFile: what the folder carries, for the archive's operator
// and for checks; the bundles themselves are self-describing.
type Index struct {
	Format   string    `json:"format"` // Format
	Device   string    `json:"device"` // "<site>/<name>"
	Exported time.Time `json:"exported"`
	Bundles  []Bundle  `json:"bundles"` // in outbox (checkpoint) order
}

// Bundle is one exported bundle.
type Bundle struct {
	ID             string `json:"id"`             // outbox id
	File           string `json:"file"`           // file name in the folder
	Bundle         string `json:"bundle"`         // "sha256:.." of the file
	Size           int64  `json:"size"`           // bytes
	CheckpointSize uint64 `json:"checkpointSize"` // the bundle's checkpoint
}

// ValidID reports whether an outbox id may name a bundle file on a
// medium: a sync id that is a plain file name, not hidden.
func ValidID(id string) bool {
	return sync.ValidID(id) && !strings.ContainsAny(id, `/\`) && !strings.HasPrefix(id, ".")
}

// ReplyName is the name of the archive's answer to the bundle file name
// (<f>.tar): <f>.receipt.json when accepted, else <f>.rejection.json.
func ReplyName(name string, accepted bool) string {
	if accepted {
		return strings.TrimSuffix(name, bundleExt) + ReceiptSuffix
	}
	return strings.TrimSuffix(name, bundleExt) + RejectionSuffix
}
