// Package keystore holds the archive's Ed25519 key: a PKCS#8 PEM file
// readable by its owner only (LoadFile, CreateFile), or a key in a
// PKCS#11 token (OpenPKCS11, this package alone imports the PKCS#11
// binding) used through crypto.Signer, so the private key never leaves
// the token. A token may also hold an AES-256 wrap key
// (OpenPKCS11WrapKey, GeneratePKCS11WrapKey) that encrypts the archive's
// content private keys at rest with CKM_AES_GCM: no token implements
// their HPKE KEM (ML-KEM-768+X25519), so they are opened in memory.
//
// A key file is refused when it is a symbolic link or readable, writable
// or executable by its group or others (*FileError). A token key is
// named by a PKCS#11 URI (RFC 7512) with the token label and the object
// label, "pkcs11:token=edgeseal;object=archive-key"; the module (the
// vendor's shared library) and the user PIN come from the configuration,
// the PIN from a file or an environment variable (ReadPIN), never from
// the command line.
package keystore

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// FileError is a key or PIN file refused for its type or mode.
type FileError struct {
	Path   string
	Mode   fs.FileMode
	Reason string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("keystore: %s (mode %v): %s", e.Path, e.Mode, e.Reason)
}

// CheckFile refuses path when it is a symbolic link, not a regular file,
// or has any permission bit for group or others.
func CheckFile(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return &FileError{Path: path, Mode: m, Reason: "a symbolic link: point the configuration at the file itself"}
	case !m.IsRegular():
		return &FileError{Path: path, Mode: m, Reason: "not a regular file"}
	case m.Perm()&0o077 != 0:
		return &FileError{Path: path, Mode: m, Reason: "readable or writable by group or others: chmod 600 it"}
	}
	return nil
}

// LoadFile reads an Ed25519 key (PKCS#8 PEM) from a file CheckFile
// accepts.
func LoadFile(path string) (ed25519.PrivateKey, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("keystore: %s: %w", path, err)
	}
	return k, nil
}

// ParseKey reads an Ed25519 key from PKCS#8 PEM.
func ParseKey(data []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return ek, nil
}

// WriteFile writes k to path (0600, durably; an existing file is
// replaced) and its public key to path.pub (0644).
func WriteFile(path string, k ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return WritePublic(path+".pub", k.Public().(ed25519.PublicKey))
}

// WritePublic writes an Ed25519 public key as PEM (PKIX), 0644.
func WritePublic(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	return fsutil.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

// Generate returns a new Ed25519 key.
func Generate() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	return k, nil
}

// ReadPIN returns the PIN from file (CheckFile applies; one line, the
// trailing newline dropped) or, when file is empty, from the environment
// variable env. Exactly one of them must be given.
func ReadPIN(file, env string, getenv func(string) string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", errors.New("keystore: PIN: give a PIN file or an environment variable, not both")
	case file != "":
		if err := CheckFile(file); err != nil {
			return "", err
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("keystore: PIN: %w", err)
		}
		pin := strings.TrimRight(string(b), "\r\n")
		if pin == "" || strings.ContainsAny(pin, "\r\n") {
			return "", fmt.Errorf("keystore: PIN file %s: want one non-empty line", file)
		}
		return pin, nil
	case env != "":
		pin := getenv(env)
		if pin == "" {
			return "", fmt.Errorf("keystore: PIN: environment variable %s is empty or unset", env)
		}
		return pin, nil
	}
	return "", errors.New("keystore: PIN: no PIN file or environment variable configured")
}
