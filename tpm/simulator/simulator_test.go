//go:build cgo

package simulator

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

func TestSeedPersistsAndKeysRepeat(t *testing.T) {
	dir := t.TempDir()
	ekOf := func() ([]byte, int64) {
		s, err := OpenSim(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Insecure() == "" {
			t.Fatal("no insecurity warning")
		}
		rsp, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(tpm2.ECCEKTemplate),
		}.Execute(s)
		if err != nil {
			t.Fatal(err)
		}
		return rsp.Name.Buffer, s.Seed
	}
	n1, s1 := ekOf()
	n2, s2 := ekOf()
	if s1 != s2 || string(n1) != string(n2) {
		t.Fatalf("seed %d/%d, EK name changed across restart", s1, s2)
	}
	b, err := os.ReadFile(filepath.Join(dir, seedFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseSeed(b); err != nil || got != s1 {
		t.Fatalf("seed file holds %d (%v), want %d", got, err, s1)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, seedFile), []byte(FormatSeed(s1+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	dir = other
	if n3, _ := ekOf(); string(n3) == string(n1) {
		t.Fatal("another seed gives the same EK")
	}
}

func TestCorruptSeedRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, seedFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenSim(dir); err == nil {
		s.Close()
		t.Fatal("opened with a corrupt seed file")
	}
}

func FuzzParseSeed(f *testing.F) {
	f.Add([]byte(FormatSeed(42)))
	f.Add([]byte(FormatSeed(-9223372036854775808)))
	f.Add([]byte("edgeseal-simulator-seed-v1 12x\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		seed, err := ParseSeed(b)
		if err != nil {
			return
		}
		again, err := ParseSeed([]byte(FormatSeed(seed)))
		if err != nil || again != seed {
			t.Fatalf("seed %d does not round-trip: %v", seed, err)
		}
	})
}

func TestSecondOpenIsBusy(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSim(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := OpenSim(dir); !errors.Is(err, ErrBusy) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("second Open: %v, want ErrBusy", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	s3, err := OpenSim(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s3.Close()
}
