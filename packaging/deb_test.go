package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readmeRow is a row of the table of installed paths in docs/install.md.
type readmeRow struct {
	path string
	mode fs.FileMode
}

// readmeTable reads the "| path | mode | what |" table of the
// "### Installed paths" section of docs/install.md.
func readmeTable(t *testing.T) []readmeRow {
	t.Helper()
	b, err := os.ReadFile("../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### Installed paths\n")
	if !ok {
		t.Fatal("docs/install.md has no \"### Installed paths\" section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	row := regexp.MustCompile("^\\| `(/[^`]*)` \\| (0[0-7]{3}) \\|")
	var rows []readmeRow
	sc := bufio.NewScanner(strings.NewReader(sec))
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		mode, _ := strconv.ParseUint(m[2], 8, 32)
		rows = append(rows, readmeRow{path: m[1], mode: fs.FileMode(mode)})
	}
	if len(rows) < 5 {
		t.Fatalf("docs/install.md \"### Installed paths\": want the table of installed paths, found %d rows", len(rows))
	}
	return rows
}

// listing is one line of `dpkg-deb -c`.
type listing struct {
	perms, owner string
}

// dpkgList parses `dpkg-deb -c deb` into path -> perms and owner; a
// directory's path ends in "/".
func dpkgList(t *testing.T, deb string) map[string]listing {
	t.Helper()
	m := map[string]listing{}
	for line := range strings.Lines(string(dpkgDeb(t, "-c", deb))) {
		// drwxr-x--- root/root         0 2026-11-26 03:30 ./etc/edgeseal/
		f := strings.Fields(line)
		if len(f) != 6 {
			t.Fatalf("dpkg-deb -c: unexpected line %q", line)
		}
		m[strings.TrimPrefix(f[5], ".")] = listing{perms: f[0], owner: f[1]}
	}
	return m
}

// TestDebListsReadmePaths: `dpkg-deb -c` lists exactly the files of the
// table of installed paths (docs/install.md), root-owned with the modes
// it gives; every other entry is a root-owned 0755 parent directory.
func TestDebListsReadmePaths(t *testing.T) {
	deb := packages(t).path(t, "deb/amd64")
	list := dpkgList(t, deb)
	want := map[string]bool{}
	for _, r := range readmeTable(t) {
		// A row with a * stands for the files it matches (at least one).
		paths := []string{r.path}
		if strings.Contains(r.path, "*") {
			paths = nil
			for p := range list {
				if ok, _ := path.Match(r.path, p); ok {
					paths = append(paths, p)
				}
			}
			if len(paths) == 0 {
				t.Errorf("%s: no file of the package matches it (docs/install.md says some do)", r.path)
			}
		}
		for _, p := range paths {
			want[p] = true
			got, ok := list[p]
			if !ok {
				t.Errorf("%s: not in the package (docs/install.md says it is)", p)
				continue
			}
			typ := fs.FileMode(0)
			if strings.HasSuffix(p, "/") {
				typ = fs.ModeDir
			}
			if w := (typ | r.mode).String(); got.perms != w {
				t.Errorf("%s: mode %s, docs/install.md says %s", p, got.perms, w)
			}
			if got.owner != "root/root" {
				t.Errorf("%s: owner %s, want root/root", p, got.owner)
			}
		}
	}
	for p, l := range list {
		switch {
		case want[p]:
		case !strings.HasSuffix(p, "/"):
			t.Errorf("%s: in the package but not in the table of docs/install.md", p)
		case l.perms != "drwxr-xr-x" || l.owner != "root/root":
			t.Errorf("%s: parent directory %s %s, want drwxr-xr-x root/root", p, l.perms, l.owner)
		}
	}
}

// TestDebFiles unpacks the amd64 .deb (dpkg-deb -x) and checks every file
// against its source, the binary, the time stamps and the control data.
func TestDebFiles(t *testing.T) {
	b := packages(t)
	deb := b.path(t, "deb/amd64")
	root := t.TempDir()
	dpkgDeb(t, "-x", deb, root)
	sources := map[string]string{
		"/usr/lib/systemd/system/edgeseal-agent.service":   "../systemd/edgeseal-agent.service",
		"/usr/lib/systemd/system/edgeseal-archive.service": "../systemd/edgeseal-archive.service",
		"/etc/edgeseal/agent.yaml":                         "nfpm/etc/agent.yaml",
		"/etc/edgeseal/archive.yaml":                       "nfpm/etc/archive.yaml",
		"/etc/edgeseal/mosquitto/edgeseal.conf":            "mosquitto/edgeseal.conf",
		"/etc/edgeseal/mosquitto/edgeseal.acl":             "mosquitto/edgeseal.acl",
		"/etc/edgeseal/mosquitto/edgeseal-dynsec.json":     "mosquitto/edgeseal-dynsec.json",
		"/usr/share/doc/edgeseal/README.md":                "../README.md",
		"/usr/share/doc/edgeseal/CHANGELOG.md":             "../CHANGELOG.md",
		"/usr/share/doc/edgeseal/examples/policy.yaml":     "examples/policy.yaml",
	}
	// Every document of docs/ and every schema of the example policy.
	for dst, glob := range map[string]string{"/usr/share/doc/edgeseal/docs/": "../docs/*.md", "/usr/share/doc/edgeseal/examples/schemas/": "examples/schemas/*.json"} {
		srcs, err := filepath.Glob(glob)
		if err != nil || len(srcs) == 0 {
			t.Fatalf("%s: %v %v", glob, srcs, err)
		}
		for _, src := range srcs {
			sources[dst+filepath.Base(src)] = src
		}
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, strings.TrimPrefix(p, root))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "/usr/bin/edgeseal" || f == manPage {
			continue // checked below, and by TestDebManPage
		}
		src, ok := sources[f]
		if !ok {
			t.Errorf("%s: unexpected file in the package", f)
			continue
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", f, src)
		}
		delete(sources, f)
	}
	for f := range sources {
		t.Errorf("%s: missing from the package", f)
	}
	if !slices.Contains(files, manPage) {
		t.Errorf("%s: missing from the package", manPage)
	}

	version := controlField(t, deb, "Version")
	checkBinary(t, filepath.Join(root, "usr/bin/edgeseal"), elf.EM_X86_64, strings.TrimSuffix(version, "-1"))
	for field, want := range map[string]string{"Package": "edgeseal", "Architecture": "amd64", "Depends": "passwd"} {
		if got := controlField(t, deb, field); got != want {
			t.Errorf("control %s: %q, want %q", field, got, want)
		}
	}

	// Every time stamp is the last commit's (or SOURCE_DATE_EPOCH's).
	epoch := gitEpoch(t)
	for name, e := range debTar(t, deb) {
		if e.hdr.ModTime.Unix() != epoch {
			t.Errorf("%s: mtime %s, want the commit time %d", name, e.hdr.ModTime, epoch)
		}
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 {
			t.Errorf("%s: uid/gid %d/%d, want 0/0", name, e.hdr.Uid, e.hdr.Gid)
		}
	}

	// Control area: conffiles and the maintainer scripts.
	ctl := t.TempDir()
	dpkgDeb(t, "-e", deb, ctl)
	conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	gotConf := strings.Fields(string(conffiles))
	slices.Sort(gotConf)
	wantConf := []string{"/etc/edgeseal/agent.yaml", "/etc/edgeseal/archive.yaml", "/etc/edgeseal/mosquitto/edgeseal-dynsec.json",
		"/etc/edgeseal/mosquitto/edgeseal.acl", "/etc/edgeseal/mosquitto/edgeseal.conf"}
	if !slices.Equal(gotConf, wantConf) {
		t.Errorf("conffiles %v, want %v", gotConf, wantConf)
	}
	sh := need(t, "sh")
	for script, src := range map[string]string{"postinst": "postinst.sh", "prerm": "prerm.sh", "postrm": "postrm.sh"} {
		p := filepath.Join(ctl, script)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", script, err)
			continue
		}
		if fi.Mode().Perm()&0o111 != 0o111 {
			t.Errorf("%s: mode %s, want executable", script, fi.Mode())
		}
		got, _ := os.ReadFile(p)
		want, err := os.ReadFile(filepath.Join("nfpm", "scripts", src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from nfpm/scripts/%s", script, src)
		}
		if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v: %s", script, err, out)
		}
	}
}

// gitEpoch is the time the packages should carry.
func gitEpoch(t *testing.T) int64 {
	t.Helper()
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		out, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
		if err != nil {
			t.Fatalf("git log: %v", err)
		}
		s = strings.TrimSpace(string(out))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkBinary checks that bin is a static ELF for machine and, when it runs
// here, that `edgeseal version` prints version.
func checkBinary(t *testing.T, bin string, machine elf.Machine, version string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: machine %s, want %s", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has an ELF interpreter: not a CGO_ENABLED=0 static binary", bin)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: not stripped (-s -w)", bin)
	}
	if machine != elf.EM_X86_64 || runtime.GOARCH != "amd64" {
		return
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if got, want := strings.TrimSpace(string(out)), "edgeseal "+version; got != want {
		t.Errorf("edgeseal version: %q, want %q", got, want)
	}
}

// TestCrossArchPackages checks the arm64 and armv7 packages: the right
// architecture in the .deb's control data and the RPM file, and an ELF
// binary for that machine (the CI requirement that both build).
func TestCrossArchPackages(t *testing.T) {
	b := packages(t)
	for _, c := range []struct {
		arch, debArch string
		machine       elf.Machine
	}{
		{"amd64", "amd64", elf.EM_X86_64},
		{"arm64", "arm64", elf.EM_AARCH64},
		{"armv7", "armhf", elf.EM_ARM},
	} {
		t.Run(c.arch, func(t *testing.T) {
			deb := b.path(t, "deb/"+c.arch)
			if got := controlField(t, deb, "Architecture"); got != c.debArch {
				t.Errorf("Architecture %q, want %q", got, c.debArch)
			}
			e, ok := debTar(t, deb)["/usr/bin/edgeseal"]
			if !ok || e.hdr.Typeflag != tar.TypeReg {
				t.Fatal("no /usr/bin/edgeseal")
			}
			bin := filepath.Join(t.TempDir(), "edgeseal")
			if err := os.WriteFile(bin, e.data, 0o755); err != nil {
				t.Fatal(err)
			}
			checkBinary(t, bin, c.machine, strings.TrimSuffix(controlField(t, deb, "Version"), "-1"))
			if c.arch == "armv7" {
				checkARMv7(t, bin)
			}
			checkRPM(t, b.path(t, "rpm/"+c.arch), controlField(t, deb, "Version"))
		})
	}
}

// checkARMv7 checks the EABI version 5 hard-float flags of a GOARM=7
// binary's ELF header.
func checkARMv7(t *testing.T, bin string) {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS32 {
		t.Errorf("armv7: class %s, want ELFCLASS32", f.Class)
	}
	// e_flags at offset 36 of a 32-bit little-endian ELF header.
	flags := uint32(data[36]) | uint32(data[37])<<8 | uint32(data[38])<<16 | uint32(data[39])<<24
	if flags>>24 != 5 {
		t.Errorf("armv7: e_flags %#x, want EABI version 5", flags)
	}
}

// checkRPM checks an RPM's lead: magic, binary package, and the name
// edgeseal-VERSION-RELEASE (debVersion is "VERSION-RELEASE" too).
func checkRPM(t *testing.T, path, debVersion string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 96 || !bytes.Equal(data[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		t.Fatalf("%s: no RPM lead", path)
	}
	if data[6] != 0 || data[7] != 0 {
		t.Errorf("%s: not a binary RPM", path)
	}
	name := string(bytes.TrimRight(data[10:76], "\x00"))
	if want := "edgeseal-" + debVersion; name != want {
		t.Errorf("%s: RPM name %q, want %q", path, name, want)
	}
	if len(data) < 1<<20 {
		t.Errorf("%s: %d bytes, too small to hold the binary", path, len(data))
	}
}

// TestReproducible builds again with the first build's version and time
// given as VERSION and SOURCE_DATE_EPOCH (the fallback outside git) and
// wants every package byte-identical.
func TestReproducible(t *testing.T) {
	b := packages(t)
	version := strings.TrimSuffix(controlField(t, b.path(t, "deb/amd64"), "Version"), "-1")
	second, err := runBuild("second", "VERSION="+version, "SOURCE_DATE_EPOCH="+strconv.FormatInt(gitEpoch(t), 10))
	if err != nil {
		t.Fatal(err)
	}
	for key, name := range b.files {
		if second.files[key] != name {
			t.Errorf("%s: %s the first time, %s the second", key, name, second.files[key])
			continue
		}
		x, err := os.ReadFile(filepath.Join(b.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(second.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: two builds differ", name)
		}
	}
	sums1, _ := os.ReadFile(filepath.Join(b.dir, "SHA256SUMS"))
	sums2, _ := os.ReadFile(filepath.Join(second.dir, "SHA256SUMS"))
	if len(sums1) == 0 || !bytes.Equal(sums1, sums2) {
		t.Errorf("SHA256SUMS differ:\n%s\n%s", sums1, sums2)
	}
	t.Logf("SHA256SUMS:\n%s", sums1)
}
