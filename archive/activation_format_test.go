package archive_test

import (
	"fmt"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
)

type activationVectors struct {
	Comment           string `json:"comment"`
	Challenge         string `json:"challenge"`
	Response          string `json:"response"`
	InvalidChallenges []struct {
		Name, Challenge, Error string
	} `json:"invalidChallenges"`
	InvalidResponses []struct {
		Name, Response, Error string
	} `json:"invalidResponses"`
}

func readActivationVectors(t testing.TB) activationVectors {
	return vectorsFrom[activationVectors](t, "testdata/enroll-activation-v1.json")
}

// refused are the invalid challenges and responses as refusedVectors.
func (v activationVectors) refused() (challenges, responses []refusedVector) {
	for _, c := range v.InvalidChallenges {
		challenges = append(challenges, refusedVector{Name: c.Name, Input: c.Challenge, Error: c.Error})
	}
	for _, c := range v.InvalidResponses {
		responses = append(responses, refusedVector{Name: c.Name, Input: c.Response, Error: c.Error})
	}
	return challenges, responses
}

// TestActivationVectors pins the challenge and response formats: the
// valid ones parse and marshal back to the same bytes; each invalid one
// is refused with an error naming what is wrong; oversize input is
// refused before decoding.
func TestActivationVectors(t *testing.T) {
	v := readActivationVectors(t)
	c, err := archive.ParseChallenge([]byte(v.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Marshal(); err != nil || string(again) != v.Challenge {
		t.Fatalf("challenge marshals back to %s (%v)", again, err)
	}
	r, err := archive.ParseActivationResponse([]byte(v.Response))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := r.Marshal(); err != nil || string(again) != v.Response {
		t.Fatalf("response marshals back to %s (%v)", again, err)
	}
	if !archive.IsActivationResponse([]byte(v.Response)) || archive.IsActivationResponse([]byte(v.Challenge)) {
		t.Fatal("IsActivationResponse")
	}
	parseChallenge := func(b []byte) error { _, err := archive.ParseChallenge(b); return err }
	parseResponse := func(b []byte) error { _, err := archive.ParseActivationResponse(b); return err }
	challenges, responses := v.refused()
	checkRefused(t, "challenge", 8, challenges, parseChallenge)
	checkRefused(t, "response", 6, responses, parseResponse)
	checkOversize(t, "challenge", `{"version":1`, archive.MaxActivationSize, parseChallenge)
	checkOversize(t, "response", `{"version":1`, archive.MaxActivationSize, parseResponse)
}

// ExampleParseChallenge reads the credential challenge that `edgeseal
// archive enroll-file` wrote for an air-gapped device.
func ExampleParseChallenge() {
	c, err := archive.ParseChallenge([]byte(`{"version":1,"type":"edgeseal.enroll-challenge","device":"plant-7/line3-gw",` +
		`"keyId":"sha256:abababababababababababababababababababababababababababababababab","credentialBlob":"AQID","encryptedSecret":"BAUG"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Device, len(c.CredentialBlob), len(c.EncryptedSecret))
	// Output: plant-7/line3-gw 3 3
}
