package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func loadExample(t testing.TB) *Policy {
	t.Helper()
	p, err := Load(filepath.Join("testdata", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const goodInvoice = `{"invoice_no":"INV-000042","issued":"2026-11-25","customer":{"id":"C7","name":"ACME","email":"ap@acme.example"},
"currency":"EUR","lines":[{"sku":"A-1","qty":2,"amount":10.5}],"total":21}`

// invoice returns a request the example policy allows, changed by edit.
func invoice(edit func(*Request)) Request {
	r := Request{
		Principal: "n8n-prod", Workflow: "invoices-daily", App: "n8n",
		Classification: "confidential", Destination: "archive",
		MediaType: "application/json", Data: []byte(goodInvoice), Size: int64(len(goodInvoice)),
	}
	if edit != nil {
		edit(&r)
	}
	return r
}

func report(edit func(*Request)) Request {
	r := Request{
		Principal: "appsmith", Workflow: "monthly-report", App: "appsmith",
		Classification: "public", Destination: "auditor-share",
		MediaType: "application/pdf", Size: 123456,
	}
	if edit != nil {
		edit(&r)
	}
	return r
}

// data replaces the JSON payload of an invoice.
func data(s string) func(*Request) {
	return func(r *Request) { r.Data, r.Size = []byte(s), int64(len(s)) }
}

func TestCheckAllows(t *testing.T) {
	p := loadExample(t)
	tests := []struct {
		name string
		req  Request
	}{
		{"invoice", invoice(nil)},
		{"explicit schema and retention", invoice(func(r *Request) { r.Schema, r.Retention = "invoice@1", "finance-10y" })},
		{"media type parameters and case", invoice(func(r *Request) { r.MediaType = "Application/JSON; charset=utf-8" })},
		{"second principal of a workflow", Request{Principal: "n8n-prod", Workflow: "sensor-batches", Classification: "internal",
			Destination: "archive", MediaType: "application/vnd.edgeseal.sensors+json",
			Data: []byte(`{"line":"3","readings":[{"at":"2026-11-26T01:00:00Z","sensor":"t1","value":-4.5}]}`)}},
		{"pdf without data", report(nil)},
		{"csv", report(func(r *Request) { r.MediaType = "text/csv; charset=utf-8" })},
		{"exactly max size", report(func(r *Request) { r.Size = 33554432 })},
		{"wildcard media type", Request{Principal: "spool", Workflow: "scans", Classification: "confidential",
			Destination: "archive", MediaType: "image/png", Size: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Check(tt.req); err != nil {
				t.Fatalf("Check = %v, want nil", err)
			}
		})
	}
}

func TestCheckViolations(t *testing.T) {
	p := loadExample(t)
	tests := []struct {
		name  string
		req   Request
		rule  Rule
		field string
		msg   string
	}{
		{"unknown workflow", invoice(func(r *Request) { r.Workflow = "invoices" }), RuleUnknownWorkflow, "workflow", `"invoices"`},
		{"empty workflow", invoice(func(r *Request) { r.Workflow = "" }), RuleUnknownWorkflow, "workflow", "no workflow"},
		{"principal of another workflow", invoice(func(r *Request) { r.Principal = "appsmith" }), RulePrincipalNotAllowed, "principal", "appsmith"},
		{"no principal", invoice(func(r *Request) { r.Principal = "" }), RulePrincipalNotAllowed, "principal", "may not export"},
		{"csv to a schema workflow", invoice(func(r *Request) { r.MediaType = "text/csv" }), RuleMediaTypeNotAllowed, "media_type", "JSON only"},
		{"json to a pdf workflow", report(func(r *Request) { r.MediaType = "application/json" }), RuleMediaTypeNotAllowed, "media_type", "application/pdf, text/csv"},
		{"other vendor json", invoice(func(r *Request) { r.Workflow = "sensor-batches"; r.MediaType = "application/x+json" }), RuleMediaTypeNotAllowed, "media_type", "application/x+json"},
		{"no media type", report(func(r *Request) { r.MediaType = "" }), RuleMediaTypeNotAllowed, "media_type", "not a media type"},
		{"garbage media type", report(func(r *Request) { r.MediaType = "pdf" }), RuleMediaTypeNotAllowed, "media_type", "not a media type"},
		{"wildcard request", report(func(r *Request) { r.MediaType = "text/*" }), RuleMediaTypeNotAllowed, "media_type", "not a media type"},
		{"outside wildcard", Request{Principal: "spool", Workflow: "scans", MediaType: "text/plain"}, RuleMediaTypeNotAllowed, "media_type", "image/*"},
		{"size over", report(func(r *Request) { r.Size = 33554433 }), RuleTooLarge, "size", "33554433 bytes"},
		{"data over, size understated", invoice(func(r *Request) { r.Data = make([]byte, 1048577); r.Size = 1 }), RuleTooLarge, "size", "1048577 bytes"},
		{"other schema version", invoice(func(r *Request) { r.Schema = "invoice@2" }), RuleSchemaMismatch, "schema", "uses invoice@1"},
		{"schema for a file workflow", report(func(r *Request) { r.Schema = "invoice@1" }), RuleSchemaMismatch, "schema", "uses none"},
		{"classification", invoice(func(r *Request) { r.Classification = "secret" }), RuleClassificationNotAllowed, "classification", "internal, confidential"},
		{"no classification", report(func(r *Request) { r.Classification = "" }), RuleClassificationNotAllowed, "classification", `""`},
		{"retention", invoice(func(r *Request) { r.Retention = "ops-2y" }), RuleRetentionMismatch, "retention", "keeps finance-10y"},
		{"destination", invoice(func(r *Request) { r.Destination = "s3://elsewhere" }), RuleDestinationNotAllowed, "destination", "s3://elsewhere"},
		{"no destination", report(func(r *Request) { r.Destination = "" }), RuleDestinationNotAllowed, "destination", `""`},
		{"missing property", invoice(data(`{"invoice_no":"INV-000001"}`)), RuleSchemaViolation, "data", `at "": missing properties`},
		{"pattern", invoice(data(strings.Replace(goodInvoice, "INV-000042", "42", 1))), RuleSchemaViolation, "data", `at "/invoice_no"`},
		{"nested minimum", invoice(data(strings.Replace(goodInvoice, `"qty":2`, `"qty":0`, 1))), RuleSchemaViolation, "data", `at "/lines/0/qty"`},
		{"format in a $ref'd file", invoice(data(strings.Replace(goodInvoice, "ap@acme.example", "not-an-email", 1))), RuleSchemaViolation, "data", `at "/customer/email"`},
		{"date format", invoice(data(strings.Replace(goodInvoice, "2026-11-25", "25.11.2026", 1))), RuleSchemaViolation, "data", `at "/issued"`},
		{"additional property", invoice(data(strings.Replace(goodInvoice, `"total":21`, `"total":21,"x":1`, 1))), RuleSchemaViolation, "data", `additional properties 'x'`},
		{"several failures", invoice(data(`{"invoice_no":5,"issued":"x","customer":{},"lines":[],"total":-1}`)), RuleSchemaViolation, "data", "more)"},
		{"not JSON", invoice(data(`{"invoice_no":`)), RuleSchemaViolation, "data", "not JSON"},
		{"no data", invoice(data(``)), RuleSchemaViolation, "data", "no JSON data"},
		{"trailing data", invoice(data(goodInvoice + ` {}`)), RuleSchemaViolation, "data", "data after"},
		{"repeated key", invoice(data(`{"lines":[{"a/b":1,"a/b":2}]}`)), RuleSchemaViolation, "data", `at "/lines/0/a~1b": key "a/b" repeated`},
		{"bad utf-8", invoice(data("{\"invoice_no\":\"\xff\"}")), RuleSchemaViolation, "data", "UTF-8"},
		{"too deep", invoice(data(strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1))), RuleSchemaViolation, "data", "nested deeper"},
		{"huge exponent", invoice(data(`{"total": 1e-999999}`)), RuleSchemaViolation, "data", `at "/total": number 1e-999999 has an exponent over 1000`},
		{"double overflow", invoice(data(`{"total": 1e400}`)), RuleSchemaViolation, "data", "IEEE 754"},
		{"long number", invoice(data(`{"total": 1` + strings.Repeat("0", MaxNumberLen) + `}`)), RuleSchemaViolation, "data", "longer than"},
		{"control char", invoice(data("{\"invoice_no\": \"a\tb\"}")), RuleSchemaViolation, "data", `at "/invoice_no": not JSON: control character`},
		{"bad escape", invoice(data(`{"invoice_no": "\x"}`)), RuleSchemaViolation, "data", "not JSON"},
		{"first rule wins", invoice(func(r *Request) { r.Principal = "appsmith"; r.Classification = "secret"; r.Data = nil }), RulePrincipalNotAllowed, "principal", "appsmith"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.req)
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("Check = %v (%T), want a *Violation", err, err)
			}
			if v.Rule != tt.rule || v.Field != tt.field || !strings.Contains(v.Message, tt.msg) {
				t.Fatalf("Check = {%s %s %q}, want {%s %s ...%q...}", v.Rule, v.Field, v.Message, tt.rule, tt.field, tt.msg)
			}
			t.Logf("%v", err)
			if !strings.HasPrefix(err.Error(), "policy: "+string(tt.rule)+": ") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestCheckConcurrent(t *testing.T) {
	p := loadExample(t)
	good, bad := invoice(nil), invoice(data(strings.Replace(goodInvoice, `"qty":2`, `"qty":0`, 1)))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if err := p.Check(good); err != nil {
					errs <- err
					return
				}
				var v *Violation
				if err := p.Check(bad); !errors.As(err, &v) || v.Rule != RuleSchemaViolation {
					errs <- fmt.Errorf("goroutine %d, round %d: bad invoice got %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{`{}`, `[]`, `null`, `true`, `false`, `"x"`, `1.50`, `-0`, `-1.5E+07`, `{"a":[1,{"b":null}],"c":true}`, ` [ 1 , 2 ] `,
		`"\u00e9\ud83d\ude00\ud800 \" \\ \/ \b\f\n\r\t"`, `{"":{"":[]}}`, "\"caf\u00e9 ✓\""} {
		got, err := decodeJSON([]byte(s))
		if err != nil {
			t.Fatalf("decodeJSON(%s): %v", s, err)
		}
		want := decodeStd(t, []byte(s))
		if !jsonEqual(got, want) {
			t.Errorf("decodeJSON(%s) = %#v, want %#v", s, got, want)
		}
	}
}

func TestDecodeJSONRefuses(t *testing.T) {
	for _, s := range []string{``, ` `, `{`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `1e`, `-`, `+1`, `tru`, `nul`, `[1] [2]`,
		`"\u12"`, `"\q"`, "\"a\x01\"", `'a'`, `NaN`, `Infinity`, `{"a":1,"a":1}`, `1e1001`, `1e400`} {
		if v, err := decodeJSON([]byte(s)); err == nil {
			t.Errorf("decodeJSON(%q) = %#v, want an error", s, v)
		}
	}
}

func decodeStd(t testing.TB, b []byte) any {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", b, err)
	}
	return v
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func BenchmarkCheck(b *testing.B) {
	p := loadExample(b)
	// About 1 KiB of invoice.
	line := `{"sku":"A-1","qty":2,"amount":10.5}`
	lines := strings.Repeat(line+",", 25) + line
	req := invoice(data(strings.Replace(goodInvoice, `[{"sku":"A-1","qty":2,"amount":10.5}]`, "["+lines+"]", 1)))
	if err := p.Check(req); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(req.Data)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Check(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
