package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func TestArchiveImagesDockerSave(t *testing.T) {
	p := writeTar(t, map[string]string{
		"manifest.json": `[{"Config":"sha256:f9cc","RepoTags":["docker.io/local/proxyv2:1.31-dev"],"Layers":["l.tar.gz"]}]`,
		"l.tar.gz":      "layer",
	})
	got, err := ArchiveImages(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ArchiveImage{{Ref: "docker.io/local/proxyv2:1.31-dev", ID: "sha256:f9cc"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestArchiveImagesOCILayout(t *testing.T) {
	p := writeTar(t, map[string]string{
		"oci-layout":        `{"imageLayoutVersion":"1.0.0"}`,
		"index.json":        `{"schemaVersion":2,"manifests":[{"digest":"sha256:aaaa","annotations":{"io.containerd.image.name":"docker.io/local/curl:1","org.opencontainers.image.ref.name":"1"}}]}`,
		"blobs/sha256/aaaa": `{"schemaVersion":2,"config":{"digest":"sha256:cccc"},"layers":[]}`,
	})
	got, err := ArchiveImages(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ArchiveImage{{Ref: "docker.io/local/curl:1", ID: "sha256:cccc"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestArchiveImagesNotAnArchive(t *testing.T) {
	p := writeTar(t, map[string]string{"README": "hello"})
	if _, err := ArchiveImages(p); err == nil {
		t.Fatal("no error for a tarball without manifest.json or index.json")
	}
}

// TestArchiveImagesOfTheCaches reads the real archives of this workplace's caches when present.
func TestArchiveImagesOfTheCaches(t *testing.T) {
	paths, _ := filepath.Glob("/var/tmp/egressconf-proxyimage/out/*.tar")
	paths = append(paths, "/var/tmp/localcluster/images/curl.tar")
	n := 0
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		n++
		imgs, err := ArchiveImages(p)
		if err != nil || len(imgs) == 0 || imgs[0].Ref == "" || len(imgs[0].ID) < len("sha256:")+8 {
			t.Errorf("%s: %+v, %v", p, imgs, err)
		}
	}
	if n == 0 {
		t.Skip("no image archive cached on this machine")
	}
}
