package imagebuild

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/egressconf/egressconf/pkg/image"
)

// PathEnv is the PATH both test-mesh images set (Debian's default).
const PathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config is what an image's config carries besides what Image fixes.
type Config struct {
	Entrypoint []string
	Env        []string
	// Title is the org.opencontainers.image.title label.
	Title string
	// Labels are added to title and source (and win over them).
	Labels map[string]string
}

// Image assembles an OCI image (OCI manifest and config media types) from layers, in order, for
// linux/amd64, created at the Unix epoch (so the digest depends on the content alone), working
// directory / and no USER (root), with cfg's entrypoint, environment and labels, plus the
// org.opencontainers.image.title (cfg.Title) and .source (egressconf's module) labels.
func Image(layers []v1.Layer, cfg Config) (v1.Image, error) {
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	labels := map[string]string{
		"org.opencontainers.image.title":  cfg.Title,
		"org.opencontainers.image.source": "https://" + image.Module,
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	cf.Config = v1.Config{Entrypoint: cfg.Entrypoint, Env: cfg.Env, WorkingDir: "/", Labels: labels}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	return img, nil
}

// Layers makes one gzipped layer of each directory (pkg/image.LayerFromDir, with owner), in
// order; each layer's file is the directory's path plus ".tar.gz".
func Layers(owner image.OwnerFunc, dirs ...string) ([]v1.Layer, error) {
	var layers []v1.Layer
	for _, d := range dirs {
		layer, err := image.LayerFromDir(d, d+".tar.gz", owner)
		if err != nil {
			return nil, err
		}
		layers = append(layers, layer)
	}
	return layers, nil
}

// ArchiveName is an archive's file name for a reference and cache key:
// <last path element of the repository>-<tag>-<key[:16]>.tar (the name is the cache's index).
func ArchiveName(ref, key string) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("imagebuild: reference %q: %w", ref, err)
	}
	if len(key) < 16 {
		return "", fmt.Errorf("imagebuild: key %q too short", key)
	}
	repo := tag.RepositoryStr()
	return fmt.Sprintf("%s-%s-%s.tar", repo[strings.LastIndex(repo, "/")+1:], tag.TagStr(), key[:16]), nil
}

// DebInputs are the cache-key inputs of Debian packages: "deb name=version sha256", one each.
func DebInputs(debs []Deb) []string {
	s := make([]string, len(debs))
	for i, d := range debs {
		s[i] = fmt.Sprintf("deb %s=%s %s", d.Name, d.Version, d.SHA256)
	}
	return s
}

// Reusable reports whether archive exists with a sidecar for key (a cache hit) and its size,
// and says which on p: "cache hit: reusing ..." or "cache miss: key ..., building ...".
func Reusable(p *Progress, archive, key string) (int64, bool) {
	if fi, err := os.Stat(archive); err == nil && SidecarMatches(archive+".json", key) {
		p.Line("cache hit: reusing %s (key %s, %s); no build", archive, key[:16], MiB(fi.Size()))
		return fi.Size(), true
	}
	p.Line("cache miss: key %s, building %s", key[:16], archive)
	return 0, false
}

// Sidecar is the JSON a builder writes next to its archive (archive + ".json"); Key is the
// archive's cache key.
type Sidecar struct {
	Key     string    `json:"key"`
	Ref     string    `json:"ref"`
	Archive string    `json:"archive"`
	Size    int64     `json:"size"`
	Built   time.Time `json:"built"`
	Inputs  []string  `json:"inputs"`
}

// SidecarMatches reports whether the sidecar at path is readable and names key.
func SidecarMatches(path, key string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var sc Sidecar
	return json.Unmarshal(data, &sc) == nil && sc.Key == key
}

// WriteArchive writes img as a `docker save`-style tarball for tag to archive (through
// archive + ".tmp", renamed, so a failed write leaves no archive), then its sidecar, sc completed
// with the archive's base name, size and the build time; it returns the archive's size.
func WriteArchive(archive string, tag name.Tag, img v1.Image, sc Sidecar) (int64, error) {
	tmp := archive + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("imagebuild: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, archive); err != nil {
		return 0, fmt.Errorf("imagebuild: %w", err)
	}
	fi, err := os.Stat(archive)
	if err != nil {
		return 0, fmt.Errorf("imagebuild: %w", err)
	}
	sc.Archive, sc.Size, sc.Built = filepath.Base(archive), fi.Size(), time.Now().UTC().Truncate(time.Second)
	data, _ := json.MarshalIndent(sc, "", "  ")
	if err := os.WriteFile(archive+".json", append(data, '\n'), 0o644); err != nil {
		return 0, fmt.Errorf("imagebuild: %w", err)
	}
	return fi.Size(), nil
}
