package policy_test

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent/policy"
)

func ExamplePolicy_Check() {
	p, err := policy.Load(filepath.Join("testdata", "policy.yaml"))
	if err != nil {
		fmt.Println(err)
		return
	}
	req := policy.Request{
		Principal:      "n8n-prod",
		Workflow:       "invoices-daily",
		App:            "n8n",
		Classification: "confidential",
		Destination:    "archive",
		MediaType:      "application/json",
		Data: []byte(`{"invoice_no": "INV-000042", "issued": "2026-11-25",
			"customer": {"id": "C7", "name": "ACME"},
			"lines": [{"sku": "A-1", "qty": 0, "amount": 10.5}], "total": 0}`),
	}
	err = p.Check(req)
	var v *policy.Violation
	if errors.As(err, &v) {
		fmt.Println(v.Rule, v.Field)
		fmt.Println(v.Message)
	}

	req.Data = []byte(`{"invoice_no": "INV-000042", "issued": "2026-11-25",
		"customer": {"id": "C7", "name": "ACME"},
		"lines": [{"sku": "A-1", "qty": 1, "amount": 10.5}], "total": 10.5}`)
	fmt.Println(p.Check(req))

	req.Classification = "secret"
	fmt.Println(p.Check(req))
	// Output:
	// schema_violation data
	// at "/lines/0/qty": minimum: got 0, want 1
	// <nil>
	// policy: classification_not_allowed: classification: classification "secret" not allowed for workflow "invoices-daily" (allowed: internal, confidential)
}
