package payloadcipher_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func encOf(file []byte) string { return string(file[:payloadcipher.EncSize]) }

// TestWindowSealOpen: payloads of one window share its enc, a window
// ends after its maximum of payloads, its age or a key change, every
// payload opens (OpenRecord) to its plaintext, and the Opener
// decapsulates once per window.
func TestWindowSealOpen(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	k2 := testKey(t, "another content key")
	clk := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	s := payloadcipher.NewSealer(3, time.Hour, clk.now)
	o := payloadcipher.NewOpener(8)
	type sealed struct {
		priv        *payloadcipher.PrivateKey
		bound, pt   []byte
		file        []byte
		c           payloadcipher.Cipher
		windowIndex int
	}
	var all []sealed
	seal := func(priv *payloadcipher.PrivateKey, w int) {
		i := len(all)
		bound := fmt.Appendf(nil, `{"exportId":"e%d"}`, i)
		pt := fmt.Appendf(nil, "payload %d", i)
		file, c, err := s.Seal(priv.Public(), payloadcipher.ExporterContext("site-a/dev-1", bound), pt)
		if err != nil {
			t.Fatal(err)
		}
		if c.V != payloadcipher.V2 || c.Version() != 2 || c.KeyID != priv.ID || c.Digest != payloadcipher.Digest(file) || c.Suite() != payloadcipher.Default {
			t.Fatalf("cipher member %+v", c)
		}
		if int64(len(file)) != c.FileSize(int64(len(pt))) || bytes.Contains(file, pt) {
			t.Fatalf("file of %d bytes for %d", len(file), len(pt))
		}
		all = append(all, sealed{priv, bound, pt, file, c, w})
	}
	seal(k, 0)
	seal(k, 0)
	seal(k, 0)
	seal(k, 1) // the fourth payload: a new window
	clk.add(59 * time.Minute)
	seal(k, 1)
	clk.add(time.Minute)
	seal(k, 2)  // an hour old: a new window
	seal(k2, 3) // another key: a new window
	seal(k, 4)  // and back
	for i, a := range all {
		for j, b := range all[:i] {
			if same := encOf(a.file) == encOf(b.file); same != (a.windowIndex == b.windowIndex) {
				t.Fatalf("payloads %d and %d (windows %d, %d) share enc: %v", j, i, b.windowIndex, a.windowIndex, same)
			}
		}
	}
	for i, a := range all {
		pt, err := payloadcipher.OpenRecord(a.priv, &a.c, "site-a/dev-1", a.bound, a.file, o)
		if err != nil || !bytes.Equal(pt, a.pt) {
			t.Fatalf("payload %d: %q, %v", i, pt, err)
		}
		// Without an Opener too, and a second time from the cache.
		if pt, err := payloadcipher.OpenRecord(a.priv, &a.c, "site-a/dev-1", a.bound, a.file, nil); err != nil || !bytes.Equal(pt, a.pt) {
			t.Fatalf("payload %d without opener: %v", i, err)
		}
		if pt, err := payloadcipher.OpenRecord(a.priv, &a.c, "site-a/dev-1", a.bound, a.file, o); err != nil || !bytes.Equal(pt, a.pt) {
			t.Fatalf("payload %d again: %v", i, err)
		}
	}
	if n := o.Len(); n != 5 {
		t.Fatalf("the opener keeps %d windows, want 5", n)
	}
	// Bounded: a smaller opener keeps its size and still opens all.
	small := payloadcipher.NewOpener(2)
	for i, a := range all {
		if _, err := payloadcipher.OpenRecord(a.priv, &a.c, "site-a/dev-1", a.bound, a.file, small); err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
	}
	if n := small.Len(); n != 2 {
		t.Fatalf("the small opener keeps %d windows", n)
	}
	// A clock that steps back ends the window too.
	first, _, _ := s.Seal(k.Public(), []byte("x"), nil)
	clk.add(-time.Second)
	second, _, _ := s.Seal(k.Public(), []byte("y"), nil)
	if encOf(first) == encOf(second) {
		t.Fatal("a window outlived a clock step back")
	}
}

// TestWindowConcurrent: concurrent sealing in one window (-race) gives
// payloads that each open, at most the window's maximum per enc.
func TestWindowConcurrent(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	s := payloadcipher.NewSealer(16, 0, nil)
	o := payloadcipher.NewOpener(0)
	var wg sync.WaitGroup
	files := make([][]byte, 64)
	cs := make([]payloadcipher.Cipher, 64)
	for i := range files {
		wg.Go(func() {
			var err error
			files[i], cs[i], err = s.Seal(k.Public(), fmt.Appendf(nil, "ctx %d", i), fmt.Appendf(nil, "pt %d", i))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	per := map[string]int{}
	for i := range files {
		per[encOf(files[i])]++
		wg.Go(func() {
			pt, err := payloadcipher.OpenV2(k, &cs[i], fmt.Appendf(nil, "ctx %d", i), files[i], o)
			if err != nil || string(pt) != fmt.Sprintf("pt %d", i) {
				t.Errorf("payload %d: %q, %v", i, pt, err)
			}
		})
	}
	wg.Wait()
	if len(per) != 4 {
		t.Fatalf("64 payloads in %d windows of 16", len(per))
	}
	for _, n := range per {
		if n != 16 {
			t.Fatalf("a window sealed %d payloads", n)
		}
	}
}

// TestV2Refusals: a version 2 ciphertext moved to another record or
// device, given another window's enc, named as another version or
// suite, truncated or opened with another key is each refused with its
// own error.
func TestV2Refusals(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	s := payloadcipher.NewSealer(0, 0, nil)
	bound := []byte(`{"exportId":"e1"}`)
	file, c, err := s.Seal(k.Public(), payloadcipher.ExporterContext("site-a/dev-1", bound), []byte("secret payload"))
	if err != nil {
		t.Fatal(err)
	}
	o := payloadcipher.NewOpener(4)
	open := func(c payloadcipher.Cipher, dev string, bound, file []byte) error {
		_, err := payloadcipher.OpenRecord(k, &c, dev, bound, file, o)
		return err
	}
	if err := open(c, "site-a/dev-1", bound, file); err != nil {
		t.Fatal(err)
	}
	t.Run("moved", func(t *testing.T) {
		if err := open(c, "site-a/dev-1", []byte(`{"exportId":"e2"}`), file); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
		if err := open(c, "site-a/dev-2", bound, file); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
		// The version 1 info of the same record does not open it either.
		if _, err := payloadcipher.OpenV2(k, &c, payloadcipher.Info("site-a/dev-1", bound), file, o); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
	})
	t.Run("other window", func(t *testing.T) {
		other, _, err := payloadcipher.NewSealer(0, 0, nil).Seal(k.Public(), []byte("x"), []byte("y"))
		if err != nil {
			t.Fatal(err)
		}
		f := append(append([]byte{}, other[:payloadcipher.EncSize]...), file[payloadcipher.EncSize:]...)
		c2 := c
		c2.Digest = payloadcipher.Digest(f)
		if err := open(c2, "site-a/dev-1", bound, f); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
	})
	t.Run("version", func(t *testing.T) {
		v1 := c
		v1.V = 0
		if err := open(v1, "site-a/dev-1", bound, file); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("as version 1: want ErrOpen, got %v", err)
		}
		for _, v := range []int{3, 0xffff} {
			sw := c
			sw.V = v
			var ve *payloadcipher.VersionError
			if err := open(sw, "site-a/dev-1", bound, file); !errors.As(err, &ve) || ve.V != v {
				t.Fatalf("version %d: want *VersionError, got %v", v, err)
			}
			if err := payloadcipher.CheckFile(&sw, file); !errors.As(err, &ve) {
				t.Fatalf("check version %d: want *VersionError, got %v", v, err)
			}
			if sw.FileSize(14) != -1 {
				t.Fatalf("version %d has a file size", v)
			}
		}
		// Open is version 1's: it refuses a version 2 record by name.
		var ve *payloadcipher.VersionError
		if _, err := payloadcipher.Open(k, &c, payloadcipher.Info("site-a/dev-1", bound), file); !errors.As(err, &ve) {
			t.Fatalf("Open of version 2: want *VersionError, got %v", err)
		}
	})
	t.Run("suite", func(t *testing.T) {
		sw := c
		sw.AEAD = 3
		var se *payloadcipher.SuiteError
		if err := open(sw, "site-a/dev-1", bound, file); !errors.As(err, &se) {
			t.Fatalf("want *SuiteError, got %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		short := file[:len(file)-1]
		var de *payloadcipher.DigestError
		if err := open(c, "site-a/dev-1", bound, short); !errors.As(err, &de) {
			t.Fatalf("want *DigestError, got %v", err)
		}
		c2 := c
		c2.Digest = payloadcipher.Digest(short)
		if err := open(c2, "site-a/dev-1", bound, short); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
		tiny := file[:payloadcipher.EncSize+payloadcipher.TagSize-1]
		c2.Digest = payloadcipher.Digest(tiny)
		var fe *payloadcipher.FormatError
		if err := open(c2, "site-a/dev-1", bound, tiny); !errors.As(err, &fe) {
			t.Fatalf("want *FormatError, got %v", err)
		}
	})
	t.Run("other key", func(t *testing.T) {
		ok := testKey(t, "another content key")
		var we *payloadcipher.WrongKeyError
		if _, err := payloadcipher.OpenRecord(ok, &c, "site-a/dev-1", bound, file, o); !errors.As(err, &we) {
			t.Fatalf("want *WrongKeyError, got %v", err)
		}
		c2 := c
		c2.KeyID = ok.ID
		if _, err := payloadcipher.OpenRecord(ok, &c2, "site-a/dev-1", bound, file, o); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
	})
}

func TestCipherCanonicalV2(t *testing.T) {
	c := payloadcipher.Cipher{AEAD: 2, Digest: "sha256:" + string(bytes.Repeat([]byte("a"), 64)), KDF: 1, KEM: 25722, KeyID: "sha256:" + string(bytes.Repeat([]byte("b"), 64)), V: 2}
	want := `{"aead":2,"digest":"` + c.Digest + `","kdf":1,"kem":25722,"keyId":"` + c.KeyID + `","v":2}`
	if got := string(c.AppendCanonical(nil, true)); got != want {
		t.Fatalf("got %s", got)
	}
	if got := string(c.AppendCanonical(nil, false)); got != `{"aead":2,"kdf":1,"kem":25722,"keyId":"`+c.KeyID+`","v":2}` {
		t.Fatalf("bound form %s", got)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestWindowDigest: the digest a Sealer names (its SHA-256 resumed after
// the window's enc, hashed once per window) is SHA-256 of the whole file
// for plaintexts of every length around SHA-256's block boundaries,
// across windows of two keys.
func TestWindowDigest(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	k2 := testKey(t, "another content key")
	s := payloadcipher.NewSealer(4, time.Hour, nil)
	for _, key := range []*payloadcipher.PrivateKey{k, k2, k} {
		for _, n := range []int{0, 1, 15, 16, 31, 32, 33, 47, 48, 63, 64, 65, 1024, 4096} {
			file, c, err := s.Seal(key.Public(), fmt.Appendf(nil, "ctx %d", n), bytes.Repeat([]byte{byte(n)}, n))
			if err != nil {
				t.Fatal(err)
			}
			if c.Digest != payloadcipher.Digest(file) {
				t.Fatalf("plaintext of %d bytes: digest %s, the file's is %s", n, c.Digest, payloadcipher.Digest(file))
			}
			if err := payloadcipher.CheckFile(&c, file); err != nil {
				t.Fatal(err)
			}
		}
	}
}
