package api

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// TokenEnv is the environment variable a client's bearer token may come
// from; MaxTokenFile bounds a token file.
const (
	TokenEnv     = "EDGESEAL_TOKEN"
	MaxTokenFile = 4 << 10
)

// ClientToken returns the token of file, or of $EDGESEAL_TOKEN (through
// getenv) when file is "": "" when neither gives one.
func ClientToken(file string, getenv func(string) string) (string, error) {
	if file == "" {
		return getenv(TokenEnv), nil
	}
	return ReadTokenFile(file)
}

// ReadTokenFile reads a token file: a regular file not readable by every
// user, at most MaxTokenFile bytes, one token with surrounding white space
// (a trailing newline) trimmed.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("token file %s is readable by every user (mode %04o): chmod o-r %s", path, uint32(fi.Mode().Perm()), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(b) > MaxTokenFile {
		return "", fmt.Errorf("token file %s is over %d bytes", path, MaxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s holds more than one line or word; want the token alone", path)
	}
	return tok, nil
}
