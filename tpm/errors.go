package tpm

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrClosed is returned by every method of a TPM after Close.
var ErrClosed = errors.New("tpm: closed")

// SpecError reports a TPM spec string that cannot be used.
type SpecError struct {
	Spec   string
	Reason string
}

func (e *SpecError) Error() string { return fmt.Sprintf("tpm: spec %q: %s", e.Spec, e.Reason) }

// PCRMismatchError reports that the PCRs a key is bound to no longer hold
// the values the key was created under, so the TPM refuses to use it. It is
// the normal result of a firmware or kernel update; an operator re-binds.
type PCRMismatchError struct {
	Key      string         // "signing" or "data"
	PCRs     []int          // the selection the key is bound to
	Expected map[int][]byte // values at key creation
	Current  map[int][]byte // values now (nil if they could not be read)
	// Authorized is set for a key bound to a PCR policy key: Expected are
	// the values of the authorization in force, and an operator signs an
	// authorization of the current values instead of re-binding.
	Authorized bool
}

// Changed lists the PCRs whose current value differs from the expected one.
func (e *PCRMismatchError) Changed() []int {
	var out []int
	for _, p := range e.PCRs {
		if e.Current == nil || hex.EncodeToString(e.Expected[p]) != hex.EncodeToString(e.Current[p]) {
			out = append(out, p)
		}
	}
	return out
}

func (e *PCRMismatchError) Error() string {
	var b strings.Builder
	if e.Authorized {
		fmt.Fprintf(&b, "tpm: %s key: PCRs differ from the authorized values (an operator authorizes the new ones)", e.Key)
	} else {
		fmt.Fprintf(&b, "tpm: %s key: PCRs changed since the key was bound", e.Key)
	}
	for _, p := range e.Changed() {
		fmt.Fprintf(&b, "; pcr %d want %x", p, e.Expected[p])
		if e.Current != nil {
			fmt.Fprintf(&b, " have %x", e.Current[p])
		}
	}
	return b.String()
}

// StateError reports a file in the state directory that cannot be used.
type StateError struct {
	File   string
	Reason string
	Err    error
}

func (e *StateError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("tpm: state file %s: %s: %v", e.File, e.Reason, e.Err)
	}
	return fmt.Sprintf("tpm: state file %s: %s", e.File, e.Reason)
}

func (e *StateError) Unwrap() error { return e.Err }

// AuthorizationNeededError reports that a key bound to an operator's
// PCR-policy key cannot be used because no authorization of PCR values is
// installed (see TPM.Authorize): the operator signs the current values
// with `edgeseal tpm authorize-pcrs`.
type AuthorizationNeededError struct {
	Key     string         // "signing" or "data"
	PCRs    []int          // the selection to authorize
	Current map[int][]byte // values now (nil if they could not be read)
}

func (e *AuthorizationNeededError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tpm: %s key: no authorization of PCR values is installed; an operator signs the current values", e.Key)
	for _, p := range e.PCRs {
		if v, ok := e.Current[p]; ok {
			fmt.Fprintf(&b, "; pcr %d have %x", p, v)
		}
	}
	return b.String()
}

// AuthorizationError reports an authorization of PCR values that cannot be
// installed: the keys are not bound to a PCR policy key, it names other
// PCRs, or the TPM refused its signature.
type AuthorizationError struct {
	Reason string
	Err    error
}

func (e *AuthorizationError) Error() string {
	if e.Err != nil {
		return "tpm: pcr authorization: " + e.Reason + ": " + e.Err.Error()
	}
	return "tpm: pcr authorization: " + e.Reason
}

func (e *AuthorizationError) Unwrap() error { return e.Err }
