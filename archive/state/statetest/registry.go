package statetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive/state"
)

// RegistryOpener opens a view of the registry named name: two views of
// one name are two processes sharing it (each open is a view of its
// own; the same name sees the same document).
type RegistryOpener func(t *testing.T, name string) state.Registry

// RunRegistry runs the conformance suite of state.Registry.
func RunRegistry(t *testing.T, open RegistryOpener) {
	t.Run("Empty", func(t *testing.T) { registryEmpty(t, open(t, "ra")) })
	t.Run("Shared", func(t *testing.T) { registryShared(t, open(t, "rb"), open(t, "rb")) })
	t.Run("Error", func(t *testing.T) { registryError(t, open(t, "rc")) })
	t.Run("Race", func(t *testing.T) { registryRace(t, open(t, "rd"), open(t, "rd")) })
	t.Run("Reopen", func(t *testing.T) {
		r := open(t, "re")
		update(t, r, []byte("kept\n"))
		doc, _, err := open(t, "re").Read(t.Context(), "")
		if err != nil || string(doc) != "kept\n" {
			t.Fatalf("a new view reads %q %v, want what was stored", doc, err)
		}
	})
}

func update(t *testing.T, r state.Registry, doc []byte) string {
	t.Helper()
	tag, err := r.Update(t.Context(), func([]byte) ([]byte, error) { return doc, nil })
	must(t, err)
	return tag
}

// registryEmpty: a registry never written reads as NoRegistry, and an
// Update that stores nothing leaves it so.
func registryEmpty(t *testing.T, r state.Registry) {
	ctx := t.Context()
	doc, tag, err := r.Read(ctx, "")
	if err != nil || doc != nil || tag != state.NoRegistry {
		t.Fatalf("empty registry: %q %q %v", doc, tag, err)
	}
	called := false
	tag, err = r.Update(ctx, func(doc []byte) ([]byte, error) {
		called = true
		if doc != nil {
			t.Errorf("Update of an empty registry gave %q", doc)
		}
		return nil, nil
	})
	if err != nil || !called || tag != state.NoRegistry {
		t.Fatalf("Update storing nothing: tag %q called %v %v", tag, called, err)
	}
	if doc, tag, err = r.Read(ctx, ""); err != nil || doc != nil || tag != state.NoRegistry {
		t.Fatalf("after an Update storing nothing: %q %q %v", doc, tag, err)
	}
}

// registryShared: what one view stores the other reads, with a new tag;
// a Read at the current tag reads nothing; an Update sees the document
// the other view stored.
func registryShared(t *testing.T, a, b state.Registry) {
	ctx := t.Context()
	t1 := update(t, a, []byte("one\n"))
	if t1 == "" || t1 == state.NoRegistry {
		t.Fatalf("tag %q after a write", t1)
	}
	doc, tag, err := a.Read(ctx, t1)
	if err != nil || doc != nil || tag != t1 {
		t.Fatalf("Read at the current tag: %q %q %v, want nothing and the same tag", doc, tag, err)
	}
	doc, tb, err := b.Read(ctx, "")
	if err != nil || string(doc) != "one\n" {
		t.Fatalf("other view reads %q %v", doc, err)
	}
	if _, err := b.Update(ctx, func(doc []byte) ([]byte, error) {
		if string(doc) != "one\n" {
			t.Errorf("Update sees %q, want the stored document", doc)
		}
		return append(bytes.Clone(doc), "two\n"...), nil
	}); err != nil {
		t.Fatal(err)
	}
	doc, t2, err := a.Read(ctx, t1)
	if err != nil || string(doc) != "one\ntwo\n" || t2 == t1 {
		t.Fatalf("after the other view's Update: %q tag %q (was %q) %v", doc, t2, t1, err)
	}
	// Unchanged: the same tag again, nothing read, in both views.
	if doc, tag, err = a.Read(ctx, t2); err != nil || doc != nil || tag != t2 {
		t.Fatalf("Read at the current tag: %q %q %v", doc, tag, err)
	}
	if doc, _, err = b.Read(ctx, tb); err != nil || string(doc) != "one\ntwo\n" {
		t.Fatalf("Read at an old tag: %q %v", doc, err)
	}
}

// registryError: fn's error is returned as is and nothing is stored.
func registryError(t *testing.T, r state.Registry) {
	ctx := t.Context()
	t1 := update(t, r, []byte("before\n"))
	boom := errors.New("boom")
	if _, err := r.Update(ctx, func([]byte) ([]byte, error) { return []byte("after\n"), boom }); !errors.Is(err, boom) {
		t.Fatalf("Update whose fn failed: %v, want fn's error", err)
	}
	doc, tag, err := r.Read(ctx, "")
	if err != nil || string(doc) != "before\n" {
		t.Fatalf("after a failed Update: %q %v", doc, err)
	}
	if doc, _, err = r.Read(ctx, t1); err != nil || (doc != nil && string(doc) != "before\n") || (doc == nil && tag != t1) {
		t.Fatalf("after a failed Update the tag moved without the document: %q %v", doc, err)
	}
}

// registryRace: concurrent Updates of two views, each adding a line,
// lose none.
func registryRace(t *testing.T, a, b state.Registry) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			_, err := r.Update(t.Context(), func(doc []byte) ([]byte, error) {
				return fmt.Appendf(bytes.Clone(doc), "%d\n", i), nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	doc, _, err := a.Read(t.Context(), "")
	must(t, err)
	seen := map[int]bool{}
	for _, l := range strings.Fields(string(doc)) {
		k, err := strconv.Atoi(l)
		if err != nil || seen[k] {
			t.Fatalf("line %q twice or not written: %q", l, doc)
		}
		seen[k] = true
	}
	if len(seen) != 2*n {
		t.Fatalf("%d of %d concurrent Updates kept: %q", len(seen), 2*n, doc)
	}
}
