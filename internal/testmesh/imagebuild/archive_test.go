package imagebuild

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestImageWriteArchiveAndSidecar(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "etc/hello"), "hello", 0o644)
	layers, err := Layers(nil, filepath.Join(dir, "a"))
	if err != nil || len(layers) != 1 {
		t.Fatalf("Layers = %d layers, %v", len(layers), err)
	}
	img, err := Image(layers, Config{Entrypoint: []string{"/bin/x"}, Env: []string{PathEnv}, Title: "t",
		Labels: map[string]string{"k": "v", "org.opencontainers.image.title": "override"}})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("docker.io/local/x:1")
	archive := filepath.Join(dir, "x-1-0123456789abcdef.tar")
	size, err := WriteArchive(archive, tag, img, Sidecar{Key: "key1", Ref: tag.String(), Inputs: []string{"in 1"}})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Size() != size {
		t.Fatalf("archive: %v, size %d vs %d", err, size, fi.Size())
	}
	if _, err := os.Stat(archive + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	var sc Sidecar
	data, _ := os.ReadFile(archive + ".json")
	if err := json.Unmarshal(data, &sc); err != nil || sc.Archive != filepath.Base(archive) || sc.Size != size ||
		sc.Key != "key1" || sc.Built.IsZero() || len(sc.Inputs) != 1 {
		t.Fatalf("sidecar %+v, %v", sc, err)
	}
	if !SidecarMatches(archive+".json", "key1") || SidecarMatches(archive+".json", "key2") || SidecarMatches(archive+".missing", "key1") {
		t.Fatal("SidecarMatches does not tell the key")
	}

	back, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(time.Unix(0, 0)) || c.WorkingDir != "/" ||
		c.User != "" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/bin/x" || len(c.Env) != 1 || c.Env[0] != PathEnv {
		t.Fatalf("config %+v", cf)
	}
	if c.Labels["k"] != "v" || c.Labels["org.opencontainers.image.title"] != "override" || c.Labels["org.opencontainers.image.source"] == "" {
		t.Fatalf("labels %v", c.Labels)
	}
	// The archive keeps the config byte for byte (its manifest is the tarball's own).
	c1, _ := img.ConfigName()
	if c2, _ := back.ConfigName(); c1 != c2 {
		t.Fatalf("config digest changed through the archive: %s, %s", c1, c2)
	}
}
