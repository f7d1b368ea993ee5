package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// counterAttrs are the attributes of the seal counter: an orderly (hybrid)
// counter read and incremented with its own empty auth, outside DA.
func counterAttrs() tpm2.TPMANV {
	return tpm2.TPMANV{
		NT:        tpm2.TPMNTCounter,
		AuthWrite: true,
		AuthRead:  true,
		OwnerRead: true,
		NoDA:      true,
		Orderly:   true,
	}
}

// initCounter defines the NV counter if absent and, for the simulator,
// which forgets NV at restart, advances it to the last value recorded in
// the state directory.
func (t *TPM) initCounter(ctx context.Context) error {
	rsp, err := tpm2.NVReadPublic{NVIndex: t.nvIndex}.Execute(t.tr)
	if errors.Is(err, tpm2.TPMRCHandle) {
		_, err = tpm2.NVDefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
				NVIndex:    t.nvIndex,
				NameAlg:    tpm2.TPMAlgSHA256,
				Attributes: counterAttrs(),
				DataSize:   8,
			}),
		}.Execute(t.tr)
		if err != nil {
			return fmt.Errorf("tpm: define nv counter %#x: %w", uint32(t.nvIndex), err)
		}
		t.log.Info("tpm: defined nv counter", "index", fmt.Sprintf("%#x", uint32(t.nvIndex)))
		rsp, err = tpm2.NVReadPublic{NVIndex: t.nvIndex}.Execute(t.tr)
	}
	if err != nil {
		return fmt.Errorf("tpm: nv counter %#x: %w", uint32(t.nvIndex), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return fmt.Errorf("tpm: nv counter: %w", err)
	}
	if pub.Attributes.NT != tpm2.TPMNTCounter || pub.DataSize != 8 || !pub.Attributes.AuthRead || !pub.Attributes.AuthWrite {
		return fmt.Errorf("tpm: nv index %#x exists and is not an auth-read/write counter", uint32(t.nvIndex))
	}
	t.nvName = rsp.NVName
	if !t.simulated {
		return nil
	}
	if err := t.restoreClock(); err != nil {
		return err
	}
	return t.restoreCounter(ctx)
}

// restoreCounter brings the simulator's counter up to the recorded value.
func (t *TPM) restoreCounter(ctx context.Context) error {
	b, err := readState(t.stateDir, counterFile)
	if err != nil || b == nil {
		return err
	}
	st, err := parseCounterFile(counterFile, b)
	if err != nil {
		return err
	}
	if st.Index != uint32(t.nvIndex) {
		t.log.Warn("tpm: recorded counter is for another index; not restoring", "recorded", st.Index, "index", uint32(t.nvIndex))
		return nil
	}
	v, err := t.readCounter()
	if err != nil {
		return err
	}
	start := v
	for v < st.Value {
		if err := ctx.Err(); err != nil {
			return err
		}
		for range st.Value - v {
			if err := t.increment(); err != nil {
				return err
			}
		}
		if v, err = t.readCounter(); err != nil {
			return err
		}
	}
	if v != start {
		t.log.Warn("tpm: simulator forgot its nv counter; restored from state dir", "from", start, "to", v)
	}
	return nil
}

func (t *TPM) nvAuth() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: t.nvIndex, Name: t.nvName, Auth: tpm2.PasswordAuth(nil)}
}

func (t *TPM) increment() error {
	_, err := tpm2.NVIncrement{
		AuthHandle: t.nvAuth(),
		NVIndex:    tpm2.NamedHandle{Handle: t.nvIndex, Name: t.nvName},
	}.Execute(t.tr)
	if err != nil {
		return fmt.Errorf("tpm: nv increment: %w", err)
	}
	return nil
}

// readCounter reads the counter; a counter never incremented reads 0.
func (t *TPM) readCounter() (uint64, error) {
	rsp, err := tpm2.NVRead{
		AuthHandle: t.nvAuth(),
		NVIndex:    tpm2.NamedHandle{Handle: t.nvIndex, Name: t.nvName},
		Size:       8,
	}.Execute(t.tr)
	if errors.Is(err, tpm2.TPMRCNVUninitialized) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tpm: nv read: %w", err)
	}
	if len(rsp.Data.Buffer) != 8 {
		return 0, fmt.Errorf("tpm: nv read: %d bytes", len(rsp.Data.Buffer))
	}
	return binary.BigEndian.Uint64(rsp.Data.Buffer), nil
}

// IncrementCounter increments the NV counter and returns its new value.
func (t *TPM) IncrementCounter(ctx context.Context) (uint64, error) {
	if err := t.lock(ctx); err != nil {
		return 0, err
	}
	defer t.unlock()
	if err := t.increment(); err != nil {
		return 0, err
	}
	v, err := t.readCounter()
	if err != nil {
		return 0, err
	}
	if t.simulated {
		st := counterState{V: 1, Index: uint32(t.nvIndex), Value: v}
		if err := writeJSON(t.stateDir, counterFile, &st); err != nil {
			return 0, err
		}
	}
	return v, nil
}

// ReadCounter reads the NV counter.
func (t *TPM) ReadCounter(ctx context.Context) (uint64, error) {
	if err := t.lock(ctx); err != nil {
		return 0, err
	}
	defer t.unlock()
	return t.readCounter()
}
