package zzorig_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/zzorig"
)

func FuzzDiffRecord(f *testing.F) {
	c, err := bundletest.NewChain(f.Context(), nil, 1, bundletest.Options{Records: 12, RecordSize: 300})
	if err != nil {
		f.Fatal(err)
	}
	recs, _ := c.Bundles[0].Records()
	for _, r := range recs {
		f.Add(r)
	}
	f.Add([]byte(`{"a":-0}`))
	f.Add([]byte(`{"a":12345678901234567}`))
	f.Add([]byte(`{"a":"\u001f\"\\é"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, errA := zzorig.ParseRecord(in)
		b, errB := bundle.ParseRecord(in)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("orig err %v, new err %v", errA, errB)
		}
		if errA != nil {
			var na *zzorig.NotCanonicalError
			var nb *bundle.NotCanonicalError
			if errors.As(errA, &na) != errors.As(errB, &nb) || errA.Error() != errB.Error() {
				t.Fatalf("orig err %v, new err %v", errA, errB)
			}
			return
		}
		if a.Seq != b.Seq || a.Type != b.Type || !a.Time.Equal(b.Time) || a.Device != b.Device || a.Prev != b.Prev ||
			fmt.Sprintf("%+v", a.Actor) != fmt.Sprintf("%+v", b.Actor) || string(a.Body) != string(b.Body) {
			t.Fatalf("records differ")
		}
		if a.Type == bundle.TypeExport {
			ea, _ := a.ExportBody()
			eb, _ := b.ExportBody()
			if fmt.Sprintf("%+v", *ea) != fmt.Sprintf("%+v", *eb) {
				t.Fatalf("export bodies differ")
			}
		}
	})
}
