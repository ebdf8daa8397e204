// Package kuberouter builds the NetworkPolicy enforcer of the kind cluster CI runs here: the
// firewall of kube-router (its network-policy controller alone: no routing, no service proxy, no
// CNI), built from the Go module proxy, with the iptables and ipset userland from Debian bookworm
// packages (internal/testmesh/imagebuild), and its manifest. It is a test-cluster component, apart
// from the product's backends: the kind node here has a bridge CNI that does not enforce
// NetworkPolicy, and this kernel lacks the nft queue support kindnet's policy engine needs
// (/work/shared/reference/upstream-envoy-notes.md, last section).
//
// v2.1.0 is the only version of the module on the proxy here, and it has reported security
// advisories (README): it is meant only for the throwaway cluster of a test run.
package kuberouter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/egressconf/egressconf/internal/testmesh/imagebuild"
)

const (
	// Module and Version are what the binary is built from (the only version the proxy lists).
	Module  = "github.com/cloudnativelabs/kube-router/v2"
	Version = "v2.1.0"
	// Package is kube-router's main package.
	Package = Module + "/cmd/kube-router"

	// DefaultRef is the image reference the manifest uses.
	DefaultRef = "docker.io/local/kube-router:" + Version
	// DefaultCacheDir holds downloads, the binary and the archive between runs.
	DefaultCacheDir = "/var/tmp/egressconf-kuberouter"
	// BinaryPath is the binary's path in the image.
	BinaryPath = "/usr/local/bin/kube-router"

	// BuilderVersion is part of the cache key; bump it when the image's assembly changes.
	BuilderVersion = "kuberouter/1"

	// LabelTestClusterComponent marks an image or object that exists only to give CI's throwaway
	// cluster a capability (here: NetworkPolicy enforcement); never part of a product backend.
	LabelTestClusterComponent = "io.egressconf.test-cluster-component"
	// LabelVersion is kube-router's version in the image's labels.
	LabelVersion        = "io.egressconf.kube-router-version"
	LabelDebianPackages = "io.egressconf.debian-packages"
	LabelKey            = "io.egressconf.kuberouter-key"
	// ComponentName is LabelTestClusterComponent's value.
	ComponentName = "kube-router-firewall"
)

// DebianPackages are the bookworm packages in the image, pinned to the versions this was built and
// verified with (2026-12-03): glibc, iptables (-nft and -legacy) with its libraries, and ipset.
var DebianPackages = []imagebuild.Package{
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
	{Name: "netbase", Version: "6.4"},
	{Name: "ipset", Version: "7.17-1"},
	{Name: "libipset13", Version: "7.17-1"},
}

// Options for Build.
type Options struct {
	// Ref is the image reference; DefaultRef when empty.
	Ref string
	// OutDir receives the archive and its sidecar (.json).
	OutDir string
	// CacheDir holds downloads and intermediate results; DefaultCacheDir when empty.
	CacheDir string
	// GoBinary is the go command; "go" when empty.
	GoBinary string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result describes a built or reused archive.
type Result struct {
	Archive string
	Key     string
	Ref     string
	Reused  bool
	Size    int64
	Inputs  []string
}

// Sidecar is the JSON written next to the archive.
type Sidecar = imagebuild.Sidecar

// ArchiveName is the archive's file name: kube-router-<tag>-<key[:16]>.tar.
func ArchiveName(ref, key string) (string, error) { return imagebuild.ArchiveName(ref, key) }

// Build makes the image archive in opts.OutDir, or reuses the one for the same inputs.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.OutDir == "" {
		return nil, errors.New("kuberouter: Options.OutDir is required")
	}
	ref := opts.Ref
	if ref == "" {
		ref = DefaultRef
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("kuberouter: reference %q: %w", ref, err)
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = DefaultCacheDir
	}
	goBin := opts.GoBinary
	if goBin == "" {
		goBin = "go"
	}
	for _, d := range []string{cache, opts.OutDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("kuberouter: %w", err)
		}
	}
	p := imagebuild.NewProgress(opts.Log)

	var debs []imagebuild.Deb
	err = p.Phase("debian packages", func() (string, error) {
		debs, err = imagebuild.FetchDebs(ctx, filepath.Join(cache, "debs"), DebianPackages, false)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d packages, %d downloaded, sha256 checked against apt's index: %s",
			len(debs), imagebuild.Downloaded(debs), imagebuild.DebVersions(debs)), nil
	})
	if err != nil {
		return nil, err
	}
	goVersion, err := imagebuild.Run(ctx, "", nil, goBin, "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	binKey := imagebuild.Key([]string{"builder " + BuilderVersion, "module " + Module + "@" + Version,
		"go " + strings.TrimSpace(string(goVersion)), "ldflags " + ldflags()})
	inputs := []string{"builder " + BuilderVersion, "ref " + tag.String(), "kube-router " + binKey}
	inputs = append(inputs, imagebuild.DebInputs(debs)...)
	key := imagebuild.Key(inputs)
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
		return nil, fmt.Errorf("kuberouter: %w", err)
	}
	defer os.RemoveAll(work)

	var bin string
	err = p.Phase("kube-router binary", func() (string, error) {
		var reused bool
		bin, reused, err = buildBinary(ctx, goBin, filepath.Join(cache, "bin", binKey[:16]))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s@%s (%s)", Package, Version, map[bool]string{true: "cached " + bin, false: "built"}[reused]), nil
	})
	if err != nil {
		return nil, err
	}
	debRoot, binRoot := filepath.Join(work, "debian"), filepath.Join(work, "kube-router")
	err = p.Phase("rootfs", func() (string, error) {
		if err := imagebuild.UnpackDebs(ctx, debs, debRoot); err != nil {
			return "", err
		}
		if err := stageBinary(bin, binRoot); err != nil {
			return "", err
		}
		return "debian userland and " + BinaryPath, nil
	})
	if err != nil {
		return nil, err
	}
	err = p.Phase("image", func() (string, error) {
		layers, err := imagebuild.Layers(nil, debRoot, binRoot)
		if err != nil {
			return "", err
		}
		img, err := Image(layers, map[string]string{LabelDebianPackages: imagebuild.DebVersions(debs), LabelKey: key})
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
	return res, nil
}

// Image assembles the image: entrypoint BinaryPath, root, and the labels that mark it a
// test-cluster component with kube-router's version; extra labels are added.
func Image(layers []v1.Layer, extraLabels map[string]string) (v1.Image, error) {
	labels := map[string]string{LabelTestClusterComponent: ComponentName, LabelVersion: Version}
	for k, v := range extraLabels {
		labels[k] = v
	}
	return imagebuild.Image(layers, imagebuild.Config{
		Entrypoint: []string{BinaryPath},
		Env:        []string{imagebuild.PathEnv},
		Title:      "egressconf test-cluster NetworkPolicy enforcer (kube-router " + Version + " firewall only; not for production)",
		Labels:     labels,
	})
}

func ldflags() string {
	return "-s -w -X " + Module + "/pkg/version.Version=" + Version
}

// buildBinary builds kube-router into dir/kube-router unless it is there already, from a scratch
// module that requires Module@Version (GOFLAGS=-mod=mod fills its go.sum), so egressconf's own
// go.mod stays free of kube-router.
func buildBinary(ctx context.Context, goBin, dir string) (string, bool, error) {
	out := filepath.Join(dir, "kube-router")
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return out, true, nil
	}
	mod := filepath.Join(dir, "module")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return "", false, fmt.Errorf("kuberouter: %w", err)
	}
	gomod := "module egressconf-kuberouter-build\n\ngo 1.22\n\nrequire " + Module + " " + Version + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", false, fmt.Errorf("kuberouter: %w", err)
	}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}
	tmp := out + ".tmp"
	if _, err := imagebuild.Run(ctx, mod, env, goBin, "build", "-trimpath", "-ldflags="+ldflags(), "-o", tmp, Package); err != nil {
		return "", false, err
	}
	return out, false, os.Rename(tmp, out)
}

func stageBinary(bin, root string) error {
	dst := filepath.Join(root, BinaryPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("kuberouter: %w", err)
	}
	in, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("kuberouter: %w", err)
	}
	if err := os.WriteFile(dst, in, 0o755); err != nil {
		return fmt.Errorf("kuberouter: %w", err)
	}
	return os.Chmod(dst, 0o755)
}
