package tpm

import (
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// flushStale flushes the transient objects and sessions a swtpm still
// holds from a process that died without Close: swtpm has no resource
// manager, so with its 3 object slots a crashed agent's AK and signing key
// would make the next Open fail with TPM_RC_OBJECT_MEMORY. edgeseal is
// the only user of its swtpm; another client's objects are flushed too.
func (t *TPM) flushStale() error {
	n := 0
	for _, first := range []uint32{0x80000000, 0x02000000, 0x03000000} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: first, PropertyCount: 64}.Execute(t.tr)
		if err != nil {
			return fmt.Errorf("tpm: list handles: %w", err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return fmt.Errorf("tpm: list handles: %w", err)
		}
		for _, h := range hs.Handle {
			if uint32(h)>>24 != first>>24 {
				continue
			}
			if err := t.flush(h); err != nil {
				return err
			}
			n++
		}
	}
	if n > 0 {
		t.log.Warn("tpm: flushed objects and sessions left by an earlier process", "count", n)
	}
	return nil
}
