package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// ArchiveImage is one image an archive holds: its reference and its ID (the config's digest, which
// is what containerd and crictl report as the image's ID).
type ArchiveImage struct {
	Ref, ID string
}

// ArchiveImages lists the named images of an image archive, as ArchiveLabels reads it: a
// `docker save` tarball (manifest.json's RepoTags) or an OCI layout tarball (index.json, each image
// named by io.containerd.image.name or org.opencontainers.image.ref.name). Layers are skipped.
func ArchiveImages(archive string) ([]ArchiveImage, error) {
	files, err := tarFiles(archive, 4<<20)
	if err != nil {
		return nil, err
	}
	var out []ArchiveImage
	switch {
	case files["manifest.json"] != nil:
		var m []struct {
			Config   string
			RepoTags []string
		}
		if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
			return nil, fmt.Errorf("image: %s: manifest.json: %w", archive, err)
		}
		for _, e := range m {
			id := path.Clean(e.Config)
			if hex, ok := strings.CutPrefix(id, "blobs/sha256/"); ok {
				id = "sha256:" + hex
			} else if !strings.HasPrefix(id, "sha256:") {
				id = "sha256:" + strings.TrimSuffix(id, ".json")
			}
			for _, t := range e.RepoTags {
				out = append(out, ArchiveImage{Ref: t, ID: id})
			}
		}
	case files["index.json"] != nil:
		var idx struct {
			Manifests []struct {
				Digest      string            `json:"digest"`
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(files["index.json"], &idx); err != nil {
			return nil, fmt.Errorf("image: %s: index.json: %w", archive, err)
		}
		for _, d := range idx.Manifests {
			ref := d.Annotations["io.containerd.image.name"]
			if ref == "" {
				ref = d.Annotations["org.opencontainers.image.ref.name"]
			}
			var m struct {
				Config struct {
					Digest string `json:"digest"`
				} `json:"config"`
			}
			if ref == "" || json.Unmarshal(files[blobName(d.Digest)], &m) != nil || m.Config.Digest == "" {
				continue // unnamed, or an index of indexes (multi-platform): not listed
			}
			out = append(out, ArchiveImage{Ref: ref, ID: m.Config.Digest})
		}
	default:
		return nil, fmt.Errorf("image: %s: neither manifest.json nor index.json: not an image archive", archive)
	}
	return out, nil
}
