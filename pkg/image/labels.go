package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// ArchiveLabels returns the config labels of the (first) image in an image archive: a
// `docker save`-style tarball (manifest.json, as pkg/image and Build write) or an OCI image
// layout tarball (index.json, as localcluster's mkoci.py writes). The archive is read without
// unpacking it.
func ArchiveLabels(archive string) (map[string]string, error) {
	files, err := tarFiles(archive, 4<<20) // manifests and configs are small; layers are skipped
	if err != nil {
		return nil, err
	}
	var configName string
	switch {
	case files["manifest.json"] != nil:
		var m []struct{ Config string }
		if err := json.Unmarshal(files["manifest.json"], &m); err != nil || len(m) == 0 {
			return nil, fmt.Errorf("image: %s: manifest.json: no image (%v)", archive, err)
		}
		configName = path.Clean(m[0].Config)
	case files["index.json"] != nil:
		type desc struct{ MediaType, Digest string }
		var idx struct{ Manifests []desc }
		if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) == 0 {
			return nil, fmt.Errorf("image: %s: index.json: no manifest (%v)", archive, err)
		}
		d := idx.Manifests[0]
		for depth := 0; ; depth++ {
			blob := files[blobName(d.Digest)]
			if blob == nil || depth > 3 {
				return nil, fmt.Errorf("image: %s: blob %s missing", archive, d.Digest)
			}
			var m struct {
				MediaType string
				Config    desc
				Manifests []desc
			}
			if err := json.Unmarshal(blob, &m); err != nil {
				return nil, fmt.Errorf("image: %s: %s: %w", archive, d.Digest, err)
			}
			if len(m.Manifests) > 0 { // a nested index
				d = m.Manifests[0]
				continue
			}
			configName = blobName(m.Config.Digest)
			break
		}
	default:
		return nil, fmt.Errorf("image: %s: neither manifest.json nor index.json: not an image archive", archive)
	}
	cfg := files[configName]
	if cfg == nil {
		return nil, fmt.Errorf("image: %s: config %s missing", archive, configName)
	}
	var c struct {
		Config struct{ Labels map[string]string } `json:"config"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, fmt.Errorf("image: %s: config %s: %w", archive, configName, err)
	}
	if c.Config.Labels == nil {
		return map[string]string{}, nil
	}
	return c.Config.Labels, nil
}

func blobName(digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return "blobs/" + alg + "/" + hex
}

// tarFiles reads the regular files of a tarball of at most max bytes, by cleaned name.
func tarFiles(archive string, max int64) (map[string][]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("image: %s: %w", archive, err)
		}
		n := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag != tar.TypeReg || h.Size > max {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("image: %s: %s: %w", archive, n, err)
		}
		files[n] = b
	}
}
