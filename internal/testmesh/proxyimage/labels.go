package proxyimage

import "github.com/egressconf/egressconf/pkg/image"

// IsUpstreamEnvoyArchive reports whether the archive's image is one Build made: its LabelProxy
// is LabelProxyUpstream (so istiod must be installed with the upstream-Envoy settings). Istio's
// own proxyv2 images and localistio's stub carry no such label: false.
func IsUpstreamEnvoyArchive(archive string) (bool, error) {
	labels, err := image.ArchiveLabels(archive)
	if err != nil {
		return false, err
	}
	return labels[LabelProxy] == LabelProxyUpstream, nil
}
