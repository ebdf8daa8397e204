// Package imagebuild is the machinery the test mesh's image builders share (internal/testmesh:
// proxyimage, kuberouter): Debian bookworm packages downloaded with apt-get, checked against apt's
// index and unpacked with dpkg -x (not installed), commands whose failure carries their output,
// sha256 checks, cache keys over inputs, progress lines, and the images themselves: one config
// (Image), gzipped layers of directories, and the archive with its .json sidecar that the caches
// are keyed by (archive.go).
package imagebuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Run runs a command; a failure names the command line and carries its combined output.
func Run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		where := ""
		if dir != "" {
			where = " (in " + dir + ")"
		}
		return out.Bytes(), fmt.Errorf("imagebuild: %s %s%s %s: %w\n%s", strings.Join(env, " "), name,
			" "+strings.Join(args, " "), where, err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// FileSHA256 is the hex sha256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifySHA256 fails unless the file's sha256 is want.
func VerifySHA256(path, want string) error {
	got, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	if got != want {
		return fmt.Errorf("imagebuild: %s: sha256 %s, want %s: refusing it", path, got, want)
	}
	return nil
}

// Deb is a downloaded Debian package.
type Deb struct {
	Name, Version, Arch string
	File                string // path of the .deb
	SHA256              string // of File, equal to apt's index
	Downloaded          bool   // false: it was in the cache
}

// aptRecord is what `apt-cache show` says of one package version.
type aptRecord struct{ version, arch, sha256 string }

// aptShow returns apt's records for each name=version, running `apt-get update` once when apt knows nothing (no lists yet).
func aptShow(ctx context.Context, pkgs []Package) (map[string][]aptRecord, error) {
	args := []string{"show"}
	for _, p := range pkgs {
		args = append(args, p.Name+"="+p.Version)
	}
	out, err := Run(ctx, "", nil, "apt-cache", args...)
	if err != nil {
		if _, uerr := Run(ctx, "", nil, "apt-get", "update"); uerr != nil {
			return nil, fmt.Errorf("%w\n(apt-get update also failed: %v)", err, uerr)
		}
		if out, err = Run(ctx, "", nil, "apt-cache", args...); err != nil {
			return nil, fmt.Errorf("%w\nwith Options.LatestDebian (-debian-latest) apt's candidate versions are used instead of the pins", err)
		}
	}
	recs := map[string][]aptRecord{}
	var pkg string
	var r aptRecord
	flush := func() {
		if pkg != "" {
			recs[pkg] = append(recs[pkg], r)
		}
		pkg, r = "", aptRecord{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Package":
			pkg = v
		case "Version":
			r.version = v
		case "Architecture":
			r.arch = v
		case "SHA256":
			r.sha256 = v
		}
	}
	flush()
	return recs, nil
}

// candidates maps each package to apt's candidate version (`apt-cache policy`).
func candidates(ctx context.Context, pkgs []Package) (map[string]string, error) {
	args := []string{"policy"}
	for _, p := range pkgs {
		args = append(args, p.Name)
	}
	out, err := Run(ctx, "", nil, "apt-cache", args...)
	if err != nil {
		return nil, err
	}
	c := map[string]string{}
	var cur string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":") {
			cur = strings.TrimSuffix(line, ":")
		} else if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && cur != "" {
			c[cur] = v
		}
	}
	return c, nil
}

// DebFileName is apt-get download's file name for a package version (an epoch's ':' is %3a).
func DebFileName(name, version, arch string) string {
	return name + "_" + strings.ReplaceAll(version, ":", "%3a") + "_" + arch + ".deb"
}

// FetchDebs downloads (apt-get download, which checks apt's signed index) the packages missing
// from dir and checks every file's sha256 against apt's index.
func FetchDebs(ctx context.Context, dir string, pkgs []Package, latest bool) ([]Deb, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	want := append([]Package(nil), pkgs...)
	if latest {
		c, err := candidates(ctx, pkgs)
		if err != nil {
			return nil, err
		}
		for i := range want {
			if c[want[i].Name] == "" || c[want[i].Name] == "(none)" {
				return nil, fmt.Errorf("imagebuild: apt has no candidate for %s (apt-get update?)", want[i].Name)
			}
			want[i].Version = c[want[i].Name]
		}
	}
	recs, err := aptShow(ctx, want)
	if err != nil {
		return nil, err
	}
	var debs []Deb
	var missing []string
	for _, p := range want {
		var rec *aptRecord
		for i := range recs[p.Name] {
			if recs[p.Name][i].version == p.Version {
				rec = &recs[p.Name][i]
				break
			}
		}
		if rec == nil || rec.sha256 == "" {
			return nil, fmt.Errorf("imagebuild: apt-cache show has no %s=%s with a SHA256", p.Name, p.Version)
		}
		d := Deb{Name: p.Name, Version: p.Version, Arch: rec.arch, SHA256: rec.sha256,
			File: filepath.Join(dir, DebFileName(p.Name, p.Version, rec.arch))}
		if got, err := FileSHA256(d.File); err != nil || got != rec.sha256 {
			os.Remove(d.File)
			missing = append(missing, p.Name+"="+p.Version)
			d.Downloaded = true
		}
		debs = append(debs, d)
	}
	if len(missing) > 0 {
		if _, err := Run(ctx, dir, nil, "apt-get", append([]string{"download"}, missing...)...); err != nil {
			return nil, err
		}
		for _, d := range debs {
			if d.Downloaded {
				if err := VerifySHA256(d.File, d.SHA256); err != nil {
					os.Remove(d.File)
					return nil, err
				}
			}
		}
	}
	return debs, nil
}

// UnpackDebs unpacks the packages into root with `dpkg -x` (no maintainer scripts run), then does
// the part of their installation the image needs: the CA bundle update-ca-certificates would
// make (when ca-certificates is among them), the iptables/ip6tables names update-alternatives would point at the nft variants (as
// Istio's base image sets), and drops documentation.
func UnpackDebs(ctx context.Context, debs []Deb, root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	for _, d := range debs {
		if _, err := Run(ctx, "", nil, "dpkg", "-x", d.File, root); err != nil {
			return err
		}
	}
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale"} {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			return fmt.Errorf("imagebuild: %w", err)
		}
	}
	for _, d := range debs {
		if d.Name == "ca-certificates" {
			if err := CABundle(root); err != nil {
				return err
			}
		}
	}
	sbin := filepath.Join(root, "usr/sbin")
	if _, err := os.Stat(filepath.Join(sbin, "xtables-nft-multi")); err == nil {
		for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
			p := filepath.Join(sbin, n)
			if _, err := os.Lstat(p); err == nil {
				continue
			}
			if err := os.Symlink("xtables-nft-multi", p); err != nil {
				return fmt.Errorf("imagebuild: %w", err)
			}
		}
	}
	return nil
}

// CABundle writes etc/ssl/certs/ca-certificates.crt under root from the certificates the
// ca-certificates package ships in usr/share/ca-certificates (sorted by path).
func CABundle(root string) error {
	var certs []string
	err := filepath.WalkDir(filepath.Join(root, "usr/share/ca-certificates"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".crt") {
			certs = append(certs, p)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("imagebuild: CA certificates: %w", err)
	}
	if len(certs) == 0 {
		return fmt.Errorf("imagebuild: no CA certificates under %s/usr/share/ca-certificates", root)
	}
	sort.Strings(certs)
	var buf bytes.Buffer
	for _, c := range certs {
		b, err := os.ReadFile(c)
		if err != nil {
			return fmt.Errorf("imagebuild: %w", err)
		}
		buf.Write(bytes.TrimSpace(b))
		buf.WriteByte('\n')
	}
	dir := filepath.Join(root, "etc/ssl/certs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "ca-certificates.crt"), buf.Bytes(), 0o644)
}

// Progress prints "[+  12.3s] phase: ..." lines: the time since the start, and each phase's own.
type Progress struct {
	w     io.Writer
	start time.Time
}

func NewProgress(w io.Writer) *Progress {
	if w == nil {
		w = io.Discard
	}
	return &Progress{w: w, start: time.Now()}
}

func (p *Progress) Line(format string, args ...any) {
	fmt.Fprintf(p.w, "[+%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func (p *Progress) Phase(name string, f func() (string, error)) error {
	t := time.Now()
	p.Line("%s ...", name)
	msg, err := f()
	if err != nil {
		p.Line("%s FAILED after %.1fs", name, time.Since(t).Seconds())
		return err
	}
	p.Line("%s done in %.1fs: %s", name, time.Since(t).Seconds(), msg)
	return nil
}

// Package is one Debian package (name and pinned version) unpacked into an image.
type Package struct {
	Name, Version string
}

// Key is a cache key over the inputs (sorted, so their order does not matter).
func Key(inputs []string) string {
	s := append([]string(nil), inputs...)
	sort.Strings(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\n") + "\n"))
	return hex.EncodeToString(h[:])
}

// SHA256Hex is the hex sha256 of b.
func SHA256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// MiB formats a size in MiB for progress lines.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// DebVersions lists the packages as name=version, comma-separated (an image label's value).
func DebVersions(debs []Deb) string {
	s := make([]string, len(debs))
	for i, d := range debs {
		s[i] = d.Name + "=" + d.Version
	}
	return strings.Join(s, ",")
}

// Downloaded counts the packages that were downloaded rather than found in the cache.
func Downloaded(debs []Deb) int {
	n := 0
	for _, d := range debs {
		if d.Downloaded {
			n++
		}
	}
	return n
}
