package archive

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// EnrollVersion is the enrollment request version this package reads.
const EnrollVersion = 1

// MaxEnrollSize bounds an enrollment request.
const MaxEnrollSize = trustfile.MaxTrustSize + 8<<10

// EnrollRequest is what a device sends to be enrolled (as a file now, on
// MQTT edgeseal/v1/<site>/<device>/enroll later): its DEVICE.json trust
// material (EK, AK, the signing key and its certification by the AK, the
// golden PCR values its key policy is bound to) and the PCR values it
// reads now. An operator approves the trust as the device's golden
// values.
//
//	{"version":1,"trust":{...DEVICE.json...},"pcrValues":{"0":"<hex>",...},"note":"..."}
type EnrollRequest struct {
	Version   int               `json:"version"`
	Trust     json.RawMessage   `json:"trust"`
	PCRValues map[string]string `json:"pcrValues"` // PCR index -> SHA-256 bank value, lower hex
	Note      string            `json:"note,omitempty"`

	trust *trustfile.Trust
}

// ParsedTrust returns the trust material checked by ParseEnrollRequest.
func (r *EnrollRequest) ParsedTrust() *trustfile.Trust { return r.trust }

// PCRsMatch reports whether the PCR values the device reads now are the
// golden values of its key policy (when not, the device cannot sign).
func (r *EnrollRequest) PCRsMatch() bool {
	_, golden := r.trust.PCRs()
	if len(golden) != len(r.PCRValues) {
		return false
	}
	for p, v := range golden {
		if r.PCRValues[strconv.Itoa(p)] != hex.EncodeToString(v) {
			return false
		}
	}
	return true
}

// ParseEnrollRequest reads an enrollment request strictly: known fields,
// version 1, the trust a valid DEVICE.json (trustfile.ParseTrust: keys parse,
// key id and policy match, the certification verifies under the AK), PCR
// values for exactly the trust's selection, 32 bytes each. A bare
// DEVICE.json is accepted too, its golden values standing for the current
// ones.
func ParseEnrollRequest(b []byte) (*EnrollRequest, error) {
	if len(b) > MaxEnrollSize {
		return nil, fmt.Errorf("archive: enrollment of %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, enrollErr("json", err)
	}
	if _, ok := probe["trust"]; !ok {
		t, err := trustfile.ParseTrust(b)
		if err != nil {
			return nil, err
		}
		return &EnrollRequest{Version: EnrollVersion, Trust: bytes.Clone(b), PCRValues: t.GoldenPCRs, trust: t}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r EnrollRequest
	if err := dec.Decode(&r); err != nil {
		return nil, enrollErr("json", err)
	}
	if dec.More() {
		return nil, enrollErr("trailing data", nil)
	}
	if r.Version != EnrollVersion {
		return nil, enrollErr(fmt.Sprintf("version %d", r.Version), nil)
	}
	if len(r.Note) > 1024 {
		return nil, enrollErr("note longer than 1024 bytes", nil)
	}
	t, err := trustfile.ParseTrust(r.Trust)
	if err != nil {
		return nil, err
	}
	r.trust = t
	pcrs, _ := t.PCRs()
	var got []int
	for k, v := range r.PCRValues {
		p, err := strconv.Atoi(k)
		if err != nil || strconv.Itoa(p) != k || !slices.Contains(pcrs, p) {
			return nil, enrollErr(fmt.Sprintf("pcr %.10q not in the key's selection", k), nil)
		}
		raw, err := hex.DecodeString(v)
		if err != nil || len(raw) != 32 || hex.EncodeToString(raw) != v {
			return nil, enrollErr(fmt.Sprintf("pcr %s value is not 32 bytes of lower hex", k), nil)
		}
		got = append(got, p)
	}
	if len(got) != len(pcrs) {
		return nil, enrollErr(fmt.Sprintf("pcr values for %d of %d selected pcrs", len(got), len(pcrs)), nil)
	}
	return &r, nil
}

// Marshal returns the request as JSON.
func (r *EnrollRequest) Marshal() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("archive: enrollment: %w", err)
	}
	return b, nil
}

func enrollErr(reason string, err error) error {
	return &wire.FormatError{Format: "enrollment", Reason: reason, Err: err}
}
