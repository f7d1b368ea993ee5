// Package trustfile is what an auditor trusts for one device: the Trust
// file (DEVICE.json) approved at enrollment (the device's EK, AK, signing
// key and its certification, the PCR selection and golden values, the key
// policy; version 2 adds the operator's PCR-policy key) and the
// PCRAuthorization, an operator's signed approval of new PCR values for a
// device whose keys are bound with TPM2_PolicyAuthorize to that PCR-policy
// key (the agent journals it as a tpm.pcrs.authorized record).
//
// It does not check a bundle against a trust file (bundle/verify) and
// does not enroll a device (the agent writes the file at enrollment, an
// operator approves it at the archive).
package trustfile
