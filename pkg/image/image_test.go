package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// readBack opens the archive as `kind load image-archive` / `ctr import` would see it and
// returns the image and the bytes of /standin.
func readBack(t *testing.T, archive, ref string) (v1.Image, []byte) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != ref {
		t.Fatalf("manifest.json RepoTags = %+v, want [%s]", m, ref)
	}
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	return img, layerFile(t, img)
}

func layerFile(t *testing.T, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var bin []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "standin" || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || h.Typeflag != tar.TypeReg {
			t.Fatalf("unexpected layer entry %q mode %o uid %d gid %d type %c", h.Name, h.Mode, h.Uid, h.Gid, h.Typeflag)
		}
		if bin, err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	if bin == nil {
		t.Fatal("the layer has no standin binary")
	}
	return bin
}

func checkConfig(t *testing.T, img v1.Image, arch string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/standin" || c.User != "0:0" || cf.OS != "linux" || cf.Architecture != arch {
		t.Errorf("config: entrypoint %v user %q os %s arch %s", c.Entrypoint, c.User, cf.OS, cf.Architecture)
	}
	if _, ok := c.ExposedPorts["443/tcp"]; !ok {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
}

func TestBuildStandinFromSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/standin")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	dir := t.TempDir()
	archive := filepath.Join(dir, "standin.tar")
	ociDir := filepath.Join(dir, "oci")
	ref := "docker.io/egressconf/standin:test"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	err := BuildStandin(ctx, Options{Ref: ref, OutFile: archive, OCILayoutDir: ociDir, GoBinary: goBin})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built and packed in %v", time.Since(start).Round(time.Millisecond))

	img, bin := readBack(t, archive, ref)
	checkConfig(t, img, runtime.GOARCH)

	// A static binary: an ELF executable without a dynamic interpreter.
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked (PT_INTERP); CGO_ENABLED=0 did not apply")
		}
	}

	// It runs: the binary from the image prints the embedded hosts.
	exe := filepath.Join(dir, "standin")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, exe, "--print-hosts").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "name: www.aliyun.com") {
		t.Fatalf("standin --print-hosts: %v\n%s", err, out)
	}

	// The OCI layout carries the same image, named for containerd.
	idx, err := layout.ImageIndexFromPath(ociDir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations[AnnotationContainerdName] != ref ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "test" {
		t.Fatalf("OCI index %+v", im.Manifests)
	}
	ociImg, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, ociImg, runtime.GOARCH)
	if !bytes.Equal(layerFile(t, ociImg), bin) {
		t.Error("OCI layout and archive hold different binaries")
	}
}

func TestBuildStandinPrebuiltBinary(t *testing.T) {
	dir := t.TempDir()
	fakeBin := filepath.Join(dir, "standin-prebuilt")
	if err := os.WriteFile(fakeBin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	a1, a2 := filepath.Join(dir, "a", "1.tar"), filepath.Join(dir, "2.tar")
	for _, out := range []string{a1, a2} {
		if err := BuildStandin(context.Background(), Options{OutFile: out, Binary: fakeBin, Arch: "arm64"}); err != nil {
			t.Fatal(err)
		}
	}
	img1, bin := readBack(t, a1, DefaultRef)
	if string(bin) != "\x7fELF not really" {
		t.Fatalf("binary %q", bin)
	}
	checkConfig(t, img1, "arm64")
	img2, _ := readBack(t, a2, DefaultRef)
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("same binary, different image digests %s %s", d1, d2)
	}
}

func TestOptionsErrors(t *testing.T) {
	ctx := context.Background()
	if err := BuildStandin(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "OutFile") {
		t.Errorf("no output: %v", err)
	}
	if err := BuildStandin(ctx, Options{OutFile: "x.tar", Ref: "docker.io/a/b@sha256:" + strings.Repeat("0", 64)}); err == nil || !strings.Contains(err.Error(), "reference") {
		t.Errorf("digest ref: %v", err)
	}
	if _, err := FindModuleRoot(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no go.mod") {
		t.Errorf("FindModuleRoot outside the module: %v", err)
	}
	root, err := FindModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "standin", "main.go")); err != nil {
		t.Errorf("module root %s has no cmd/standin: %v", root, err)
	}
	if _, err := Image(nil, "amd64"); err == nil {
		t.Error("empty binary accepted")
	}
	err = GoBuild(ctx, Options{ModuleRoot: root, GoBinary: "/nonexistent/go"}, "amd64", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "go build ./cmd/standin") {
		t.Errorf("bad go binary: %v", err)
	}
}
