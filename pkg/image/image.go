// Package image builds the stand-in internet's container image without Docker: a static
// (CGO_ENABLED=0) build of cmd/standin as the only file of a scratch image, assembled with
// go-containerregistry and written as a `docker save`-style tarball, which both
// `kind load image-archive` and containerd's `ctr images import` (the local cluster's
// load-images.sh) accept, and optionally as an OCI image layout directory.
//
// The image runs as user 0: the server binds ports 80 and 443 itself. The stand-in's Deployment
// drops every capability except NET_BIND_SERVICE (pkg/standin, manifests.go).
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/egressconf/egressconf/pkg/standin"
)

const (
	// DefaultRef is the stand-in image reference (standin.DefaultImage).
	DefaultRef = standin.DefaultImage
	// BinaryPath is where the server binary sits in the image; it is the entrypoint.
	BinaryPath = "/standin"
	// Module is the module whose ./cmd/standin is built.
	Module = "github.com/egressconf/egressconf"
	// AnnotationContainerdName is the annotation containerd's importer takes the image name from.
	AnnotationContainerdName = "io.containerd.image.name"
)

// Options for BuildStandin.
type Options struct {
	// Ref is the image reference the archive is tagged with; DefaultRef when empty. Must be a tag.
	Ref string
	// OutFile receives the `docker save`-style tarball. Required unless OCILayoutDir is set.
	OutFile string
	// OCILayoutDir, when set, also receives an OCI image layout (created or appended to).
	OCILayoutDir string
	// Binary is a prebuilt static linux binary of cmd/standin; when empty it is built with
	// GoBinary from ModuleRoot.
	Binary string
	// GoBinary is the go command; "go" (from PATH) when empty.
	GoBinary string
	// ModuleRoot holds the go.mod of Module; found from the working directory upward when empty.
	ModuleRoot string
	// Arch is the target GOARCH and image architecture; runtime.GOARCH when empty.
	Arch string
	// BuildLog receives go build's output; nil keeps it for the error message only.
	BuildLog io.Writer
}

// BuildStandin builds (or takes) the stand-in binary, makes the image and writes it.
func BuildStandin(ctx context.Context, opts Options) error {
	if opts.OutFile == "" && opts.OCILayoutDir == "" {
		return errors.New("image: Options.OutFile or Options.OCILayoutDir is required")
	}
	ref := opts.Ref
	if ref == "" {
		ref = DefaultRef
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image: reference %q: %w", ref, err)
	}
	arch := opts.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}

	binPath := opts.Binary
	if binPath == "" {
		tmp, err := os.MkdirTemp("", "egressconf-standin-build-")
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		defer os.RemoveAll(tmp)
		binPath = filepath.Join(tmp, "standin")
		if err := GoBuild(ctx, opts, arch, binPath); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	img, err := Image(bin, arch)
	if err != nil {
		return err
	}
	if opts.OutFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.OutFile), 0o755); err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if err := tarball.WriteToFile(opts.OutFile, tag, img); err != nil {
			return fmt.Errorf("image: write %s: %w", opts.OutFile, err)
		}
	}
	if opts.OCILayoutDir != "" {
		if err := WriteOCILayout(opts.OCILayoutDir, tag, img); err != nil {
			return err
		}
	}
	return nil
}

// GoBuild runs `go build` of ./cmd/standin for linux/arch, statically (CGO_ENABLED=0), into out.
func GoBuild(ctx context.Context, opts Options, arch, out string) error {
	root := opts.ModuleRoot
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if root, err = FindModuleRoot(wd); err != nil {
			return err
		}
	}
	goBin := opts.GoBinary
	if goBin == "" {
		goBin = "go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w", "-o", out, "./cmd/standin")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var buf bytes.Buffer
	if opts.BuildLog != nil {
		cmd.Stdout = io.MultiWriter(&buf, opts.BuildLog)
		cmd.Stderr = cmd.Stdout
	} else {
		cmd.Stdout, cmd.Stderr = &buf, &buf
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("image: go build ./cmd/standin in %s (GOOS=linux GOARCH=%s CGO_ENABLED=0): %w\n%s",
			root, arch, err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// FindModuleRoot walks up from dir to the directory whose go.mod declares Module.
func FindModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(data) == Module {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("image: no go.mod for %s in %s or above it; set Options.ModuleRoot or Options.Binary", Module, dir)
		}
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// Image is a scratch image whose only file is bin at BinaryPath (mode 0755, owner 0:0), with
// entrypoint BinaryPath, default arguments --generate-certs (so `docker run` alone serves),
// user 0:0, ports 80 and 443, for linux/arch. Media types are OCI. Timestamps are fixed, so the
// same binary gives the same image digest.
func Image(bin []byte, arch string) (v1.Image, error) {
	if len(bin) == 0 {
		return nil, errors.New("image: empty binary")
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	epoch := time.Unix(0, 0).UTC()
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(BinaryPath, "/"),
		Mode:     0o755,
		Size:     int64(len(bin)),
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	raw := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"--generate-certs"},
		User:         "0:0",
		WorkingDir:   "/",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "443/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":  "egressconf stand-in internet",
			"org.opencontainers.image.source": "https://" + Module,
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return img, nil
}

// WriteOCILayout writes img into an OCI image layout at dir (creating it, or appending to an
// existing layout), annotated with the tag (org.opencontainers.image.ref.name) and the full
// reference (io.containerd.image.name, which containerd's importer uses as the image name).
func WriteOCILayout(dir string, tag name.Tag, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("image: OCI layout %s: %w", dir, err)
		}
	}
	full := tag.String() // as given: docker.io/x/y:t, not index.docker.io/...
	if !strings.HasSuffix(full, ":"+tag.TagStr()) {
		full += ":" + tag.TagStr()
	}
	err = p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		AnnotationContainerdName:            full,
	}))
	if err != nil {
		return fmt.Errorf("image: OCI layout %s: %w", dir, err)
	}
	return nil
}

// OwnerFunc gives the uid and gid a layer entry gets; name is the entry's path in the image,
// slash-separated and without a leading slash (e.g. "var/lib/istio/data").
type OwnerFunc func(name string) (uid, gid int)

// LayerFromDir writes the tree under dir as one gzip-compressed image layer to gzPath and returns
// it (OCI layer media type). Entries are sorted and get the file's mode (setuid, setgid and sticky
// bits included), modification time 0 and the owner from owner (0:0 when owner is nil), so the
// same tree gives the same layer digest. Symlinks are kept as symlinks; hard links are stored as
// separate regular files; other file types are refused.
func LayerFromDir(dir, gzPath string, owner OwnerFunc) (v1.Layer, error) {
	f, err := os.Create(gzPath)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image: %w", err)
	}
	werr := writeDirTar(zw, dir, owner)
	if err := zw.Close(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return nil, fmt.Errorf("image: layer from %s: %w", dir, werr)
	}
	layer, err := tarball.LayerFromFile(gzPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer from %s: %w", dir, err)
	}
	return layer, nil
}

func writeDirTar(w io.Writer, dir string, owner OwnerFunc) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0).UTC()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsDir(), fi.Mode().IsRegular():
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if owner != nil {
			hdr.Uid, hdr.Gid = owner(name)
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		hdr.PAXRecords = nil
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
