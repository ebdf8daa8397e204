package sim

import (
	"sync"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/features"

	"github.com/egressconf/egressconf/pkg/istioinstall"
)

// WithProfile makes Istio's control plane in process generate xDS as istiod installed with the
// install profile does (pkg/istioinstall): for ProfileUpstreamEnvoy, metadata exchange and the ALPN
// filter off (istiod's env PILOT_ENABLE_METADATA_EXCHANGE / PILOT_ENABLE_ALPN_FILTER, read by
// pilot/pkg/features.MetadataExchange / features.ALPNFilter) and no default metrics provider in
// the mesh config (the chart's telemetry.enabled=false). The default is istioinstall.ProfileIstio:
// Istio's feature defaults and the chart's default meshConfig.defaultProviders.metrics
// [prometheus]. An unknown profile makes every control-plane build fail with ParseProfile's error.
func WithProfile(p istioinstall.Profile) Option { return func(b *Backend) { b.profile = p } }

// Profile is the install profile the backend generates xDS for.
func (b *Backend) Profile() istioinstall.Profile {
	if b.profile == "" {
		return istioinstall.DefaultProfile
	}
	return b.profile
}

// featureSettings are the process-global istio.io/istio pilot/pkg/features variables a profile
// sets. They are read from the environment once, at init, and read again by the config generator
// on every generation (pilot/pkg/networking/core: listener_builder.go, networkfilter.go,
// cluster_builder.go, cluster_tls.go; pilot/pkg/security/authn/utils).
type featureSettings struct {
	metadataExchange bool // features.MetadataExchange (PILOT_ENABLE_METADATA_EXCHANGE)
	alpnFilter       bool // features.ALPNFilter (PILOT_ENABLE_ALPN_FILTER)
}

var (
	// featuresMu serialises every use of Istio's control plane in this package (building a state,
	// generating or fetching a proxy's xDS) with the variables of its backend's profile set; they
	// are restored to what they were when it is released. Backends of different profiles in one
	// process therefore never see each other's settings, and nothing outside this package sees
	// them changed once a call returns. (The backend runs one scenario at a time, and the command
	// runs one backend per process, so the lock is uncontended in practice.)
	featuresMu sync.Mutex
	// istioDefaults are the variables as Istio read them from the environment at init: the
	// settings of ProfileIstio.
	istioDefaults = featureSettings{metadataExchange: features.MetadataExchange, alpnFilter: features.ALPNFilter}
)

func currentFeatures() featureSettings {
	return featureSettings{metadataExchange: features.MetadataExchange, alpnFilter: features.ALPNFilter}
}

func (f featureSettings) apply() {
	features.MetadataExchange = f.metadataExchange
	features.ALPNFilter = f.alpnFilter
}

func profileFeatures(p istioinstall.Profile) featureSettings {
	f := istioDefaults
	if p == istioinstall.ProfileUpstreamEnvoy {
		f = featureSettings{
			metadataExchange: istioinstall.UpstreamEnvoyEnv["PILOT_ENABLE_METADATA_EXCHANGE"] == "true",
			alpnFilter:       istioinstall.UpstreamEnvoyEnv["PILOT_ENABLE_ALPN_FILTER"] == "true",
		}
	}
	return f
}

// withProfile runs fn with Istio's feature variables set for the profile, then restores them.
func withProfile[T any](p istioinstall.Profile, fn func() (T, error)) (T, error) {
	featuresMu.Lock()
	defer featuresMu.Unlock()
	saved := currentFeatures()
	defer saved.apply()
	profileFeatures(p).apply()
	return fn()
}

// applyMeshProfile sets the mesh config's telemetry as the istio-discovery chart renders it for
// the profile: with telemetry on (ProfileIstio, the chart's default) defaultProviders.metrics is
// [prometheus] (templates/configmap.yaml, "default-prometheus"), which makes istiod add the
// istio.stats filter; with telemetry off (ProfileUpstreamEnvoy) the chart renders no
// defaultProviders.
func applyMeshProfile(m *meshconfig.MeshConfig, p istioinstall.Profile) {
	if p == istioinstall.ProfileUpstreamEnvoy {
		m.DefaultProviders = &meshconfig.MeshConfig_DefaultProviders{}
		return
	}
	m.DefaultProviders = &meshconfig.MeshConfig_DefaultProviders{Metrics: []string{"prometheus"}}
}
