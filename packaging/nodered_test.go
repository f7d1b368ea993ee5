package packaging

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestNodeREDPack: `npm pack` of integrations/node-red, as `make package`
// runs it, makes node-red-contrib-edgeseal-VERSION.tgz holding the nodes,
// their client, the example flows, the README and package.json (whose
// "node-red" section names the nodes' file), and not the tests; the
// Makefile's package target runs that command into dist/.
func TestNodeREDPack(t *testing.T) {
	npm := need(t, "npm")
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "cd integrations/node-red && npm pack --pack-destination $(CURDIR)/dist") {
		t.Fatal("the Makefile's package target does not npm pack integrations/node-red into dist/")
	}
	dir := t.TempDir()
	cmd := exec.Command(npm, "pack", "--pack-destination", dir)
	cmd.Dir = filepath.Join("..", "integrations", "node-red")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm pack: %v\n%s", err, out)
	}
	var pkg struct {
		Name, Version string
		Main          string
		NodeRED       struct {
			Nodes map[string]string `json:"nodes"`
		} `json:"node-red"`
	}
	raw, err := os.ReadFile(filepath.Join(cmd.Dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	tgz := filepath.Join(dir, pkg.Name+"-"+pkg.Version+".tgz")
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatalf("npm pack made no %s: %v", filepath.Base(tgz), err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		files = append(files, strings.TrimPrefix(h.Name, "package/"))
	}
	slices.Sort(files)
	want := []string{"README.md", "examples/batch-export.json", "examples/file-export.json", "examples/json-export.json",
		"lib/client.js", "nodes/edgeseal.html", "nodes/edgeseal.js", "package.json"}
	if !slices.Equal(files, want) {
		t.Fatalf("%s holds %v, want %v", filepath.Base(tgz), files, want)
	}
	if !strings.HasPrefix(pkg.Name, "node-red-contrib-") || len(pkg.NodeRED.Nodes) != 1 || pkg.NodeRED.Nodes["edgeseal"] != "nodes/edgeseal.js" {
		t.Fatalf("package.json: name %q, node-red nodes %v", pkg.Name, pkg.NodeRED.Nodes)
	}
	for _, ex := range want[1:4] {
		var flow []map[string]any
		b, err := os.ReadFile(filepath.Join(cmd.Dir, ex))
		if err != nil || json.Unmarshal(b, &flow) != nil || len(flow) == 0 {
			t.Fatalf("%s is not a flow: %v", ex, err)
		}
		types := map[string]bool{}
		for _, n := range flow {
			types[n["type"].(string)] = true
		}
		if !types["edgeseal-export"] || !types["edgeseal-agent"] {
			t.Fatalf("%s lacks the export or config node: %v", ex, types)
		}
	}
}
