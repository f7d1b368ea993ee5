package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestManPage: `edgeseal help --man` writes edgeseal(1) with a section for
// every command of the usage text holding its usage and every flag it
// parses, the date of SOURCE_DATE_EPOCH, and roff-escaped text (no line
// starts with a stray control character, hyphens are minus signs).
func TestManPage(t *testing.T) {
	env := func(k string) string {
		if k == "SOURCE_DATE_EPOCH" {
			return "1767225600" // 2026-01-01
		}
		return ""
	}
	var b bytes.Buffer
	if err := writeMan(t.Context(), &b, env); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if !strings.Contains(page, `.TH EDGESEAL 1 "2026-01-01" "edgeseal `+version+`"`) {
		t.Errorf("no .TH line with the SOURCE_DATE_EPOCH date and the version:\n%.300s", page)
	}
	for _, sec := range []string{".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH COMMANDS", ".SH EXIT STATUS", ".SH FILES"} {
		if !strings.Contains(page, "\n"+sec+"\n") {
			t.Errorf("no %s", sec)
		}
	}
	sections := map[string]string{}
	parts := strings.Split(page, "\n.SS edgeseal ")
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "\n")
		sections[strings.ReplaceAll(name, `\-`, "-")] = body
	}
	paths := manCommands()
	if len(paths) < 25 || len(sections) != len(paths) {
		t.Fatalf("%d command sections for %d commands of the usage text", len(sections), len(paths))
	}
	for _, e := range parseUsage(usage) {
		body, ok := sections[e.path]
		if !ok {
			t.Errorf("no section for edgeseal %s", e.path)
			continue
		}
		for _, f := range e.flags {
			if !strings.Contains(body, `\-`+strings.ReplaceAll(f, "-", `\-`)) {
				t.Errorf("edgeseal %s: flag --%s not in its section", e.path, f)
			}
		}
	}
	// Flags with their help text, as --help prints them.
	if !strings.Contains(sections["doctor"], `\-token`) || !strings.Contains(sections["doctor"], "auditor's token") {
		t.Errorf("doctor's section lacks its flags' help:\n%s", sections["doctor"])
	}
	for i, l := range strings.Split(page, "\n") {
		if strings.Contains(strings.ReplaceAll(l, `\-`, ""), "-") && !strings.HasPrefix(l, `.\"`) && !strings.HasPrefix(l, ".TH ") {
			t.Errorf("line %d: unescaped hyphen: %q", i+1, l)
		}
		if strings.HasPrefix(l, "'") {
			t.Errorf("line %d starts with a control character: %q", i+1, l)
		}
	}
}
