// Command build makes edgeseal's .deb and .rpm packages with nfpm
// (`make package`). For each architecture it builds the binary with
// CGO_ENABLED=0, -trimpath, the version stamped by -ldflags and an empty
// build id, then packs it as packaging/nfpm/nfpm.yaml says, with the man
// page edgeseal(1) that a build for this machine writes (`edgeseal help
// --man`). Every time in
// the packages is the last commit's (SOURCE_DATE_EPOCH overrides it), so
// two runs on the same tree and Go toolchain give the same bytes.
//
//	go -C packaging/build run . [-root DIR] [-out DIR] [-arch host|all|amd64,arm64,armv7]
//	                            [-format deb,rpm] [-version V] [-list]
//
// -arch host (the default) packs for the machine it runs on, -arch all for
// every target; -list prints the targets -arch names and stops.
//
// It is its own module so that nfpm and its dependencies stay out of the
// edgeseal binary's module graph.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/rpm"
)

// arch is one target: its name on the command line, the Go environment that
// builds for it and nfpm's name for it.
type arch struct {
	name string
	env  []string
	nfpm string
}

// arches are the supported targets. The GOAMD64/GOARM64/GOARM levels are
// fixed so that the caller's environment cannot change the binary.
var arches = []arch{
	{name: "amd64", env: []string{"GOARCH=amd64", "GOAMD64=v1"}, nfpm: "amd64"},
	{name: "arm64", env: []string{"GOARCH=arm64", "GOARM64=v8.0"}, nfpm: "arm64"},
	{name: "armv7", env: []string{"GOARCH=arm", "GOARM=7"}, nfpm: "arm7"},
}

// packagers are the package formats, by name.
var packagers = map[string]nfpm.Packager{"deb": deb.Default, "rpm": rpm.DefaultRPM}

// options are the command line.
type options struct {
	root, out, config, version, goBin string
	arches, formats                   []string
	epoch                             time.Time
	list                              bool
}

// resolveArches expands "all" and "host" (the target for goarch).
func resolveArches(list []string, goarch string) ([]string, error) {
	var out []string
	for _, a := range list {
		switch a {
		case "all":
			for _, x := range arches {
				out = append(out, x.name)
			}
		case "host":
			i := slices.IndexFunc(arches, func(x arch) bool { return slices.Contains(x.env, "GOARCH="+goarch) })
			if i < 0 {
				return nil, fmt.Errorf("no package target for this machine (GOARCH %s): pass -arch", goarch)
			}
			out = append(out, arches[i].name)
		default:
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	o, err := parseFlags(ctx, args)
	if err != nil {
		return err
	}
	if o.list {
		_, err := fmt.Fprintln(stdout, strings.Join(o.arches, "\n"))
		return err
	}
	log.Info("packaging", "version", o.version, "time", o.epoch.Format(time.RFC3339),
		"arches", strings.Join(o.arches, ","), "formats", strings.Join(o.formats, ","), "out", o.out)
	// Sources in nfpm.yaml are relative to the repository root.
	if err := os.Chdir(o.root); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("out: %w", err)
	}
	tmp, err := os.MkdirTemp("", "edgeseal-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	man := filepath.Join(tmp, "edgeseal.1.gz")
	if err := buildManPage(ctx, o, tmp, man); err != nil {
		return err
	}
	var made []string
	for _, a := range arches {
		if !slices.Contains(o.arches, a.name) {
			continue
		}
		bin := filepath.Join(tmp, "edgeseal-"+a.name)
		if err := buildBinary(ctx, o, a, bin); err != nil {
			return err
		}
		for _, f := range o.formats {
			name, err := pack(o, a, f, bin, man)
			if err != nil {
				return err
			}
			log.Info("packaged", "arch", a.name, "file", name)
			made = append(made, name)
		}
	}
	return writeSums(o.out, made, stdout)
}

func parseFlags(ctx context.Context, args []string) (*options, error) {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	root := fs.String("root", "../..", "the edgeseal repository")
	out := fs.String("out", "", "where the packages go (default ROOT/dist)")
	archList := fs.String("arch", "host", "architectures: host (this machine's), all, or a list of amd64,arm64,armv7")
	list := fs.Bool("list", false, "print the architectures -arch names, one a line, and stop")
	formatList := fs.String("format", "deb,rpm", "package formats")
	version := fs.String("version", os.Getenv("VERSION"), "package and binary version (default from git)")
	goBin := fs.String("go", "go", "the go command that builds the binary")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		return nil, err
	}
	o := &options{root: abs, out: *out, version: *version, goBin: *goBin,
		config:  filepath.Join(abs, "packaging", "nfpm", "nfpm.yaml"),
		formats: split(*formatList), list: *list}
	if o.arches, err = resolveArches(split(*archList), runtime.GOARCH); err != nil {
		return nil, err
	}
	if o.out == "" {
		o.out = filepath.Join(abs, "dist")
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return nil, err
	}
	for _, a := range o.arches {
		if !slices.ContainsFunc(arches, func(x arch) bool { return x.name == a }) {
			return nil, fmt.Errorf("unknown arch %q (want amd64, arm64, armv7)", a)
		}
	}
	for _, f := range o.formats {
		if packagers[f] == nil {
			return nil, fmt.Errorf("unknown format %q (want deb, rpm)", f)
		}
	}
	if o.epoch, err = sourceDate(ctx, abs); err != nil {
		return nil, err
	}
	if o.version == "" {
		if o.version, err = gitVersion(ctx, abs); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func split(s string) []string {
	var r []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			r = append(r, p)
		}
	}
	return r
}

// git runs git in the repository and returns its trimmed output.
func git(ctx context.Context, root string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// sourceDate is SOURCE_DATE_EPOCH, else the last commit's time.
func sourceDate(ctx context.Context, root string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		var err error
		if s, err = git(ctx, root, "log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, fmt.Errorf("package time: set SOURCE_DATE_EPOCH outside a git checkout: %w", err)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("package time: bad SOURCE_DATE_EPOCH %q", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// gitVersion names the checkout: "1.2.3" on tag v1.2.3, "1.2.3+5.gHASH" five
// commits after it, "0.0.0+N.gHASH" with no tag (N commits), and ".dirty"
// appended when tracked files differ from the commit.
func gitVersion(ctx context.Context, root string) (string, error) {
	base, n := "0.0.0", ""
	if d, err := git(ctx, root, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*"); err == nil {
		base = strings.TrimPrefix(d, "v")
		if n, err = git(ctx, root, "rev-list", "--count", d+"..HEAD"); err != nil {
			return "", err
		}
	} else if n, err = git(ctx, root, "rev-list", "--count", "HEAD"); err != nil {
		return "", fmt.Errorf("version: set VERSION outside a git checkout: %w", err)
	}
	v := base
	if n != "0" {
		hash, err := git(ctx, root, "rev-parse", "--short=12", "HEAD")
		if err != nil {
			return "", err
		}
		v += "+" + n + ".g" + hash
	}
	st, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return "", err
	}
	if st != "" {
		if !strings.Contains(v, "+") {
			v += "+"
		} else {
			v += "."
		}
		v += "dirty"
	}
	return v, nil
}

// buildBinary builds ./cmd/edgeseal for a into bin.
func buildBinary(ctx context.Context, o *options, a arch, bin string) error {
	ldflags := "-s -w -buildid= -X main.version=" + o.version
	cmd := exec.CommandContext(ctx, o.goBin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", ldflags, "-o", bin, "./cmd/edgeseal")
	cmd.Dir = o.root
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOARM", "GOARM64", "CGO_ENABLED"}, k)
	})
	cmd.Env = append(env, append([]string{"CGO_ENABLED=0", "GOOS=linux", "GOFLAGS="}, a.env...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", a.name, err)
	}
	return nil
}

// buildManPage builds edgeseal for this machine and writes the page its
// `edgeseal help --man` prints (dated SOURCE_DATE_EPOCH, the package
// time), gzipped without a name or time, to man.
func buildManPage(ctx context.Context, o *options, tmp, man string) error {
	bin := filepath.Join(tmp, "edgeseal-man")
	ldflags := "-s -w -buildid= -X main.version=" + o.version
	cmd := exec.CommandContext(ctx, o.goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, "./cmd/edgeseal")
	cmd.Dir = o.root
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"GOFLAGS", "GOOS", "GOARCH", "CGO_ENABLED", "SOURCE_DATE_EPOCH"}, k)
	})
	cmd.Env = append(env, "CGO_ENABLED=0", "GOFLAGS=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the man page's edgeseal: %w", err)
	}
	var page, stderr bytes.Buffer
	gen := exec.CommandContext(ctx, bin, "help", "--man")
	gen.Env = append(env, "SOURCE_DATE_EPOCH="+strconv.FormatInt(o.epoch.Unix(), 10))
	gen.Stdout, gen.Stderr = &page, &stderr
	if err := gen.Run(); err != nil {
		return fmt.Errorf("edgeseal help --man: %w: %s", err, stderr.String())
	}
	if !bytes.HasPrefix(page.Bytes(), []byte(`.\"`)) || !bytes.Contains(page.Bytes(), []byte("\n.TH EDGESEAL 1 ")) {
		return fmt.Errorf("edgeseal help --man: not a man page: %.200q", page.String())
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(page.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return writeFileAtomic(man, gz.Bytes())
}

// pack writes the package of format f for a and returns its file name.
func pack(o *options, a arch, f, bin, man string) (string, error) {
	vars := map[string]string{
		"EDGESEAL_VERSION": o.version,
		"EDGESEAL_ARCH":    a.nfpm,
		"EDGESEAL_BINARY":  bin,
		"EDGESEAL_MANPAGE": man,
	}
	cfg, err := nfpm.ParseFileWithEnvMapping(o.config, func(k string) string { return vars[k] })
	if err != nil {
		return "", fmt.Errorf("nfpm config: %w", err)
	}
	info, err := cfg.Get(f)
	if err != nil {
		return "", fmt.Errorf("nfpm config %s: %w", f, err)
	}
	info.MTime = o.epoch
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("nfpm config %s: %w", f, err)
	}
	p := packagers[f]
	name := p.ConventionalFileName(info)
	var buf bytes.Buffer
	if err := p.Package(info, &buf); err != nil {
		return "", fmt.Errorf("%s %s: %w", f, a.name, err)
	}
	if err := writeFileAtomic(filepath.Join(o.out, name), buf.Bytes()); err != nil {
		return "", err
	}
	return name, nil
}

// writeSums writes SHA256SUMS for the packages made and prints it.
func writeSums(dir string, names []string, stdout io.Writer) error {
	var b strings.Builder
	slices.Sort(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	if err := writeFileAtomic(filepath.Join(dir, "SHA256SUMS"), []byte(b.String())); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, b.String())
	return err
}

// writeFileAtomic writes data to a temp file beside path, syncs it and
// renames it in, then syncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync %s", dir), err)
	}
	return nil
}
