package policy

import (
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Request is one export to check.
type Request struct {
	Principal      string // the authenticated principal's name
	Workflow       string
	App            string // the source app; recorded, not checked
	Schema         string // "name@version"; "" takes the workflow's
	Classification string
	Retention      string // "" takes the workflow's
	Destination    string
	MediaType      string // e.g. "application/json; charset=utf-8"
	Size           int64  // payload size in bytes
	Data           []byte // the payload when MediaType is JSON; validated against the schema
}

// Rule names the policy rule an export broke.
type Rule string

// The rules, in the order Check applies them.
const (
	RuleUnknownWorkflow          Rule = "unknown_workflow"
	RulePrincipalNotAllowed      Rule = "principal_not_allowed"
	RuleMediaTypeNotAllowed      Rule = "media_type_not_allowed"
	RuleTooLarge                 Rule = "too_large"
	RuleSchemaMismatch           Rule = "schema_mismatch"
	RuleClassificationNotAllowed Rule = "classification_not_allowed"
	RuleRetentionMismatch        Rule = "retention_mismatch"
	RuleDestinationNotAllowed    Rule = "destination_not_allowed"
	RuleSchemaViolation          Rule = "schema_violation"
)

// Violation is an export the policy refuses.
type Violation struct {
	Field   string // the request field at fault: workflow, principal, media_type, size, schema, classification, retention, destination, data
	Rule    Rule
	Message string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("policy: %s: %s: %s", v.Rule, v.Field, v.Message)
}

// MaxJSONDepth is the deepest nesting of arrays and objects Check accepts in
// JSON data.
const MaxJSONDepth = 256

// Check returns nil if the policy allows the export, or a *Violation naming
// the first rule it breaks. Rules apply in this order: unknown_workflow,
// principal_not_allowed, media_type_not_allowed, too_large (the larger of
// Size and len(Data) against max_size), schema_mismatch,
// classification_not_allowed, retention_mismatch, destination_not_allowed,
// schema_violation. An empty Schema or Retention takes the workflow's.
//
// The payload is parsed and validated only when every other rule passes,
// the media type is JSON and the workflow has a schema. It must then be one
// JSON value in valid UTF-8, with no repeated object keys, nesting at most
// MaxJSONDepth, and numbers that are finite IEEE 754 doubles of at most
// MaxNumberLen characters with exponents at most MaxExponent; a
// schema_violation message starts with the JSON pointer of the failing
// value, `at "/lines/0/qty": ...`.
//
// Check looks at principal names only: the caller checks roles (exporter)
// first. It is safe for concurrent use.
func (p *Policy) Check(req Request) error {
	w, ok := p.workflows[req.Workflow]
	if !ok {
		return &Violation{"workflow", RuleUnknownWorkflow, fmt.Sprintf("no workflow %.80q in the policy", req.Workflow)}
	}
	if !slices.Contains(w.Principals, req.Principal) {
		return &Violation{"principal", RulePrincipalNotAllowed, fmt.Sprintf("principal %.80q may not export workflow %q", req.Principal, w.Name)}
	}
	mt, err := baseType(req.MediaType)
	if err != nil {
		return &Violation{"media_type", RuleMediaTypeNotAllowed, fmt.Sprintf("%.80q is not a media type", req.MediaType)}
	}
	if !w.allowsType(mt) {
		return &Violation{"media_type", RuleMediaTypeNotAllowed, fmt.Sprintf("media type %s not allowed for workflow %q (allowed: %s)", mt, w.Name, w.typesText())}
	}
	if size := max(req.Size, int64(len(req.Data))); size > w.MaxSize {
		return &Violation{"size", RuleTooLarge, fmt.Sprintf("%d bytes is over the limit of %d for workflow %q", size, w.MaxSize, w.Name)}
	}
	if req.Schema != "" && req.Schema != w.Schema {
		want := w.Schema
		if want == "" {
			want = "none"
		}
		return &Violation{"schema", RuleSchemaMismatch, fmt.Sprintf("schema %.80q, but workflow %q uses %s", req.Schema, w.Name, want)}
	}
	if !slices.Contains(w.Classifications, req.Classification) {
		return &Violation{"classification", RuleClassificationNotAllowed, fmt.Sprintf("classification %.80q not allowed for workflow %q (allowed: %s)", req.Classification, w.Name, strings.Join(w.Classifications, ", "))}
	}
	if req.Retention != "" && req.Retention != w.Retention {
		return &Violation{"retention", RuleRetentionMismatch, fmt.Sprintf("retention %.80q, but workflow %q keeps %s", req.Retention, w.Name, w.Retention)}
	}
	if !slices.Contains(w.Destinations, req.Destination) {
		return &Violation{"destination", RuleDestinationNotAllowed, fmt.Sprintf("destination %.80q not allowed for workflow %q", req.Destination, w.Name)}
	}
	if w.schema != nil && isJSON(mt) {
		return validate(w.schema, w.fast, req.Data)
	}
	return nil
}

// validate parses data and validates it against sch: against fast first
// when the schema has a fast form, and against sch when that does not
// say valid.
func validate(sch *jsonschema.Schema, fast *fastSchema, data []byte) error {
	v, err := decodeJSON(data)
	if err != nil {
		return &Violation{"data", RuleSchemaViolation, err.Error()}
	}
	if fast != nil && fast.valid(v) {
		return nil
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Violation{"data", RuleSchemaViolation, err.Error()}
	}
	leaf, n := deepestLeaf(ve)
	msg := fmt.Sprintf("at %s: %s", quotePointer(pointer(leaf.InstanceLocation)), leaf.ErrorKind.LocalizedString(message.NewPrinter(language.English)))
	if n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	return &Violation{"data", RuleSchemaViolation, msg}
}

// deepestLeaf returns the leaf error with the longest instance location (the
// first of those), and the number of leaves.
func deepestLeaf(e *jsonschema.ValidationError) (*jsonschema.ValidationError, int) {
	if len(e.Causes) == 0 {
		return e, 1
	}
	var best *jsonschema.ValidationError
	total := 0
	for _, c := range e.Causes {
		l, n := deepestLeaf(c)
		total += n
		if best == nil || len(l.InstanceLocation) > len(best.InstanceLocation) {
			best = l
		}
	}
	return best, total
}

// tokenEscaper escapes a JSON pointer reference token (RFC 6901).
var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// pointer formats an instance location as an RFC 6901 JSON pointer.
func pointer(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		b.WriteByte('/')
		b.WriteString(tokenEscaper.Replace(tok))
	}
	return b.String()
}

// baseType returns the lowercase type/subtype of a media type, without
// parameters.
func baseType(mt string) (string, error) {
	base, _, err := mime.ParseMediaType(mt)
	if err != nil {
		return "", err
	}
	if typ, sub, ok := strings.Cut(base, "/"); !ok || typ == "" || sub == "" || typ == "*" || sub == "*" {
		return "", errors.New("not type/subtype")
	}
	return base, nil
}

// isJSON reports whether a base media type is JSON: application/json or a
// +json structured syntax suffix.
func isJSON(base string) bool {
	return base == "application/json" || strings.HasSuffix(base, "+json")
}

func normalizeTypes(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if typ, ok := strings.CutSuffix(t, "/*"); ok {
			out = append(out, strings.ToLower(typ)+"/*")
			continue
		}
		base, _, _ := mime.ParseMediaType(t) // validated at load
		out = append(out, base)
	}
	return out
}

func (w *workflow) allowsType(base string) bool {
	if len(w.MediaTypes) == 0 {
		return w.Schema == "" || isJSON(base)
	}
	for _, t := range w.MediaTypes {
		if t == base {
			return true
		}
		if typ, ok := strings.CutSuffix(t, "/*"); ok && strings.HasPrefix(base, typ+"/") {
			return true
		}
	}
	return false
}

func (w *workflow) typesText() string {
	if len(w.MediaTypes) == 0 {
		return "JSON only"
	}
	return strings.Join(w.MediaTypes, ", ")
}
