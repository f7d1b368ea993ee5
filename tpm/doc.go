// Package tpm is edgeseal's only door to a TPM 2.0: transports (a kernel
// resource manager device, swtpm over TCP, and the in-process simulator from
// package tpm/simulator), the key hierarchy of the design (EK, AK, a
// PCR-bound signing key certified by the AK, a PCR-sealed data key, an NV
// counter), and the commands a seal needs. It is the only package that
// imports go-tpm.
package tpm
