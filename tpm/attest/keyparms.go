package attest

import "github.com/google/go-tpm/tpm2"

// ECDSAP256Parms are the public parameters of every ECC key edgeseal
// creates or checks: curve NIST P-256, scheme ECDSA-SHA256, no symmetric
// algorithm, no KDF.
func ECDSAP256Parms() tpm2.TPMUPublicParms {
	return tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	})
}

// ECCUnique is the unique field of an ECC public area holding the point
// (x, y); a creation template gives zeros.
func ECCUnique(x, y []byte) tpm2.TPMUPublicID {
	return tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: x},
		Y: tpm2.TPM2BECCParameter{Buffer: y},
	})
}
