package tpm

import (
	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/google/go-tpm/tpm2"
)

// ecdsaScheme is the signature scheme of every signature edgeseal asks for.
func ecdsaScheme() tpm2.TPMTSigScheme {
	return tpm2.TPMTSigScheme{
		Scheme:  tpm2.TPMAlgECDSA,
		Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
	}
}

// akTemplate is the attestation key: a restricted ECDSA P-256 signing
// primary. Created in the endorsement hierarchy, the clock fields of its
// quotes are not obfuscated.
func akTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          true,
			SignEncrypt:         true,
		},
		Parameters: attest.ECDSAP256Parms(),
		Unique:     attest.ECCUnique(make([]byte, 32), make([]byte, 32)),
	}
}

// signingTemplate is the non-restricted ECDSA P-256 signing key, usable only
// through PolicyPCR (policy) with the PCR values it was created under.
func signingTemplate(policy []byte) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        false,
			AdminWithPolicy:     false,
			NoDA:                true,
			SignEncrypt:         true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		Parameters: attest.ECDSAP256Parms(),
		Unique:     attest.ECCUnique(make([]byte, 32), make([]byte, 32)),
	}
}

// sealTemplate is a sealed data object readable only through PolicyPCR.
func sealTemplate(policy []byte) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:     true,
			FixedParent:  true,
			UserWithAuth: false,
			NoDA:         true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{}),
	}
}
