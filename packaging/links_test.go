package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// mdLink matches the target of an inline Markdown link or image.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// codeSpan matches inline code, whose text is not a link.
var codeSpan = regexp.MustCompile("`[^`\n]*`")

// markdownProse returns the lines of a Markdown file outside fenced code
// blocks, inline code removed.
func markdownProse(raw string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			out = append(out, "")
			continue
		}
		if fenced {
			out = append(out, "")
			continue
		}
		out = append(out, codeSpan.ReplaceAllString(line, ""))
	}
	return out
}

// headingAnchors returns the anchors a Markdown renderer gives the
// headings of raw (GitHub's rule: lower case, only letters, digits,
// spaces, '-' and '_' kept, spaces to '-', repeats numbered -1, -2, ...).
func headingAnchors(raw string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// TestDocLinks: every relative link of the README and of docs/*.md names a
// file of the repository, and a link to a heading (#anchor) names a heading
// of its document.
func TestDocLinks(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil || len(files) < 5 {
		t.Fatalf("docs/*.md: %v %v", files, err)
	}
	files = append([]string{"../README.md"}, files...)
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range markdownProse(string(raw)) {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, anchor, _ := strings.Cut(target, "#")
				doc := f
				if path != "" {
					doc = filepath.Join(filepath.Dir(f), path)
					if _, err := os.Stat(doc); err != nil {
						t.Errorf("%s:%d: link %s: no such file", f, i+1, target)
						continue
					}
				}
				if anchor == "" || !strings.HasSuffix(doc, ".md") {
					continue
				}
				body, err := os.ReadFile(doc)
				if err != nil {
					t.Errorf("%s:%d: link %s: %v", f, i+1, target, err)
					continue
				}
				if !headingAnchors(string(body))[anchor] {
					t.Errorf("%s:%d: link %s: %s has no heading #%s", f, i+1, target, doc, anchor)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d links", checked)
	}
}
