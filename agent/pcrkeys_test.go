package agent

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzParsePCRs: `tpm authorize-pcrs --pcrs` never panics on its input,
// and what it accepts FormatPCRs writes back to the same values.
func FuzzParsePCRs(f *testing.F) {
	f.Add("0=" + strings.Repeat("00", 32) + ",7=" + strings.Repeat("77", 32))
	f.Add("0=zz")
	f.Add("24=" + strings.Repeat("00", 32))
	f.Add("1=" + strings.Repeat("11", 32) + ",1=" + strings.Repeat("11", 32))
	f.Fuzz(func(t *testing.T, s string) {
		pcrs, values, err := ParsePCRs(s)
		if err != nil {
			return
		}
		again, values2, err := ParsePCRs(FormatPCRs(pcrs, values))
		if err != nil || !slices.Equal(again, pcrs) || !slices.IsSorted(pcrs) {
			t.Fatalf("%q: round trip %v %v: %v", s, pcrs, again, err)
		}
		for _, p := range pcrs {
			if !bytes.Equal(values[p], values2[p]) || len(values[p]) != 32 {
				t.Fatalf("%q: pcr %d", s, p)
			}
		}
	})
}
