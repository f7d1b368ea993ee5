package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
)

// defaultOverlap is how long agents still accept the old key after a
// rotation, by default.
const defaultOverlap = 7 * 24 * time.Hour

// cmdArchiveKey: key show | rotate [--overlap D] [--new-key pkcs11:...] |
// import-pkcs11 --key pkcs11:... [--generate].
func cmdArchiveKey(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("archive key: want show, rotate or import-pkcs11")
	}
	verb := args[0]
	f := newArchiveFlags("archive key " + verb)
	overlap := f.fs.Duration("overlap", defaultOverlap, "rotate: how long agents still accept the old key for new receipts")
	newKey := f.fs.String("new-key", "", "rotate: a pkcs11: URI of a key created in the token (default: a new key file replacing key_file)")
	tokenKey := f.fs.String("key", "", "import-pkcs11: the pkcs11: URI to create (token and object labels)")
	generate := f.fs.Bool("generate", false, "import-pkcs11: generate a new key in the token instead of importing key_file")
	module := f.fs.String("module", "", "the PKCS#11 library (default: the config's pkcs11.module)")
	pinFile := f.fs.String("pin-file", "", "the token PIN's file (default: the config's pkcs11.pin_file)")
	pinEnv := f.fs.String("pin-env", "", "the token PIN's environment variable (default: the config's pkcs11.pin_env)")
	pos, err := parseInterleaved(f.fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("archive key %s: unexpected argument %q", verb, pos[0])
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	p := cfg.PKCS11
	if *module != "" || *pinFile != "" || *pinEnv != "" {
		p = config.PKCS11{Module: *module, PINFile: *pinFile, PINEnv: *pinEnv}
	}
	switch verb {
	case "show":
		return archiveKeyShow(cfg, stdout)
	case "rotate":
		if *overlap < 0 {
			return usageErr("archive key rotate: --overlap must not be negative")
		}
		return archiveKeyRotate(ctx, cfg, p, *newKey, *overlap, stdout, log)
	case "import-pkcs11":
		if *tokenKey == "" {
			return usageErr("archive key import-pkcs11: --key pkcs11:token=LABEL;object=LABEL is required")
		}
		return archiveKeyImport(cfg, p, *tokenKey, *generate, stdout)
	}
	return usageErr("archive key: unknown %q: want show, rotate or import-pkcs11", verb)
}

func archiveKeyShow(cfg *config.Config, stdout io.Writer) error {
	k, closeKey, err := archived.OpenKeyNoCreate(cfg)
	if err != nil {
		return err
	}
	defer closeKey()
	pub := k.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "key %s\n", archivesig.ArchiveKeyID(pub))
	chain, err := archived.ReadKeyChain(cfg)
	if err != nil {
		return err
	}
	for _, raw := range chain {
		_, an, err := archivesig.ParseArchiveKey(raw)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotation %d at %s: %s -> %s, overlap until %s, log size %d\n", an.Seq, an.Time, an.OldKeyID, an.NewKeyID, an.OverlapUntil, an.LogSize)
	}
	return nil
}

// archiveKeyRotate is `archive key rotate` (archived.RotateKey).
func archiveKeyRotate(ctx context.Context, cfg *config.Config, p config.PKCS11, newKey string, overlap time.Duration, stdout io.Writer, log *slog.Logger) error {
	r, err := archived.RotateKey(ctx, cfg, p, newKey, overlap, log)
	if errors.Is(err, archived.ErrKeyInToken) {
		return usageErr("archive key rotate: the key is in a token: create the new one there (import-pkcs11 --generate) and pass --new-key")
	}
	if err != nil {
		return err
	}
	if newKey == "" {
		fmt.Fprintf(stdout, "archive key rotated: %s -> %s, overlap %s\nnew key in %s (public key %s.pub); the old key is kept in %s: destroy it once the overlap has ended\n",
			r.OldKeyID, r.NewKeyID, overlap, cfg.KeyFile, cfg.KeyFile, r.Retired)
		return nil
	}
	fmt.Fprintf(stdout, "archive key rotated: %s -> %s, overlap %s\nset `key: %s` (and its pkcs11 section) in the archive config before starting the archive\n",
		r.OldKeyID, r.NewKeyID, overlap, newKey)
	return nil
}

// archiveKeyImport is `archive key import-pkcs11`
// (archived.ImportTokenKey).
func archiveKeyImport(cfg *config.Config, p config.PKCS11, uri string, generate bool, stdout io.Writer) error {
	k, err := archived.ImportTokenKey(cfg, p, uri, generate)
	if err != nil {
		return err
	}
	u := k.URI
	fmt.Fprintf(stdout, "key %s created in token %s as %s\n", k.KeyID, u.Token, u.Object)
	if generate {
		fmt.Fprintf(stdout, "rotate to it: edgeseal archive key rotate --new-key '%s'\n", u)
	} else {
		fmt.Fprintf(stdout, "set `key: %s` and the pkcs11 section in the archive config, then destroy %s\n", u, cfg.KeyFile)
	}
	return nil
}
