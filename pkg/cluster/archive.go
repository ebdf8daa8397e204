package cluster

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ArchiveImage is one image an archive holds: its reference and its ID (the config's digest, which
// is what containerd and crictl report as the image's ID).
type ArchiveImage struct {
	Ref, ID string
}

// ArchiveImages lists the images of an image archive: a `docker save` tarball (manifest.json) or an
// OCI layout tarball (index.json naming each image with io.containerd.image.name or
// org.opencontainers.image.ref.name). Layers are skipped, not read.
func ArchiveImages(path string) ([]ArchiveImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One pass keeps the small JSON files: manifest.json, index.json and the blobs small enough to
	// be manifests or configs.
	small := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || h.Size > 1<<20 {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, h.Name, err)
		}
		small[strings.TrimPrefix(h.Name, "./")] = data
	}
	var out []ArchiveImage
	if data, ok := small["manifest.json"]; ok {
		var m []struct {
			Config   string
			RepoTags []string
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: manifest.json: %w", path, err)
		}
		for _, e := range m {
			id := e.Config
			if b, ok := strings.CutPrefix(id, "blobs/sha256/"); ok {
				id = "sha256:" + b
			} else if !strings.HasPrefix(id, "sha256:") {
				id = "sha256:" + strings.TrimSuffix(id, ".json")
			}
			for _, t := range e.RepoTags {
				out = append(out, ArchiveImage{Ref: t, ID: id})
			}
		}
		return out, nil
	}
	data, ok := small["index.json"]
	if !ok {
		return nil, fmt.Errorf("%s: neither manifest.json nor index.json: not an image archive", path)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", path, err)
	}
	for _, m := range idx.Manifests {
		ref := m.Annotations["io.containerd.image.name"]
		if ref == "" {
			ref = m.Annotations["org.opencontainers.image.ref.name"]
		}
		blob, ok := small["blobs/"+strings.Replace(m.Digest, ":", "/", 1)]
		if ref == "" || !ok {
			continue
		}
		var man struct {
			Config struct {
				Digest string `json:"digest"`
			} `json:"config"`
		}
		if err := json.Unmarshal(blob, &man); err != nil || man.Config.Digest == "" {
			continue // an index of indexes (multi-platform): not named here, so always loaded
		}
		out = append(out, ArchiveImage{Ref: ref, ID: man.Config.Digest})
	}
	return out, nil
}
