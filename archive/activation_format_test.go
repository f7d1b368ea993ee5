package archive_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
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
	t.Helper()
	b, err := os.ReadFile("testdata/enroll-activation-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v activationVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
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
	for _, c := range v.InvalidChallenges {
		if _, err := archive.ParseChallenge([]byte(c.Challenge)); err == nil || !strings.Contains(err.Error(), c.Error) {
			t.Errorf("challenge %s: %v, want an error containing %q", c.Name, err, c.Error)
		}
	}
	for _, c := range v.InvalidResponses {
		if _, err := archive.ParseActivationResponse([]byte(c.Response)); err == nil || !strings.Contains(err.Error(), c.Error) {
			t.Errorf("response %s: %v, want an error containing %q", c.Name, err, c.Error)
		}
	}
	if len(v.InvalidChallenges) < 8 || len(v.InvalidResponses) < 6 {
		t.Fatal("too few invalid vectors")
	}
	big := `{"version":1,"pad":"` + strings.Repeat("x", archive.MaxActivationSize) + `"}`
	if _, err := archive.ParseChallenge([]byte(big)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversize challenge: %v", err)
	}
	if _, err := archive.ParseActivationResponse([]byte(big)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversize response: %v", err)
	}
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
