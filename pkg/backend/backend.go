// Package backend defines what the runner needs from a place scenarios run: a live cluster, Istio's
// control plane in process, or (for unit tests only) memory.
package backend

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

// Oracle says what kind of evidence a backend's results are. Every result in every report carries it.
type Oracle string

const (
	// OracleLiveDataPlane: curl observed through a live mesh's proxies. The only conformance evidence.
	OracleLiveDataPlane Oracle = "observed-live-data-plane"
	// OracleLiveControlPlane: predicted from the xDS a live istiod pushed, by egressconf's Envoy model.
	OracleLiveControlPlane Oracle = "predicted-live-control-plane"
	// OracleOffline: predicted from Istio's control plane run in process, by egressconf's Envoy model.
	OracleOffline Oracle = "predicted-offline-control-plane"
	// OracleFake: an in-memory backend for unit tests of the runner. Never a result.
	OracleFake Oracle = "fake-unit-test-only"
)

// Claim is the sentence reports print for the oracle.
func (o Oracle) Claim() string {
	switch o {
	case OracleLiveDataPlane:
		return "observed through a live data plane"
	case OracleLiveControlPlane:
		return "predicted from a live control plane's xDS (Envoy modelled, not run)"
	case OracleOffline:
		return "predicted offline by Istio's control plane in process (Envoy modelled, not run); not a conformance claim about a live mesh"
	default:
		return "fake backend for unit tests: not a result"
	}
}

// Info describes a backend for reports and for the runner's convergence policy.
type Info struct {
	// Name is the backend's flag value (sim, kind, existing).
	Name   string
	Oracle Oracle
	// IstioVersion is the version of the control plane that produced the results.
	IstioVersion string
	// MeshVersion names the mesh product and version where known (e.g. "istio 1.31", "ASM 1.22").
	MeshVersion string
	// Proxy is the data plane's proxy as the proxies report themselves (Envoy's server_info
	// version, e.g. "envoy 1.40.0 (9e5580.../1.40.0/Clean/RELEASE/BoringSSL)"); "" when no proxy
	// was read (offline, or predictions only).
	Proxy string
	// Deterministic backends answer every probe the same way for the same state, and converge at
	// once: the runner probes once instead of requiring a run of successes.
	Deterministic bool
	// Capabilities the backend has, e.g. CapNetworkPolicy.
	Capabilities map[string]bool
	// CapabilityReasons say why a capability is missing where the backend knows (a NetworkPolicy
	// self-test that did not block); the runner's skip messages carry them.
	CapabilityReasons map[string]string
	// NetworkPolicy says how CapNetworkPolicy was decided: the flag or the enforcing CNI found,
	// and the self-test's result ("" for backends that do not decide it).
	NetworkPolicy string
	// ClusterDNS says whose DNS a hermetic live run changed (--cluster-dns): which names resolve
	// where, for the run's pods or for every pod of the cluster ("" for other backends).
	ClusterDNS string
}

// Capabilities a scenario may require.
const (
	// CapNetworkPolicy: the cluster enforces Kubernetes NetworkPolicy.
	CapNetworkPolicy = "networkpolicy"
	// CapASMEgressTrafficPolicy: a controller serves ASMEgressTrafficPolicy (ASM); otherwise the
	// runner applies egressconf's translation to native Istio resources.
	CapASMEgressTrafficPolicy = "asm-egress-traffic-policy"
)

// Manifest is one resource file's objects as they are applied (namespace already set).
type Manifest struct {
	// Key identifies the applied copy (file, or file@namespace).
	Key     string
	Objects []*unstructured.Unstructured
}

// Backend is where a scenario runs. Calls for one scenario come in order from one goroutine:
// Setup, then steps (SetMeshPolicy / Delete / Remove / Deploy / Apply, Converge, Probe, AccessLog),
// then Teardown. A probe that could not run returns an error, never an Observed.
type Backend interface {
	Info() Info
	// Setup creates the scenario's namespaces, gateways and non-deferred workloads and sets its
	// starting mesh policy.
	Setup(ctx context.Context, s *catalog.Scenario) error
	SetMeshPolicy(ctx context.Context, mode string) error
	Apply(ctx context.Context, m Manifest) error
	Delete(ctx context.Context, m Manifest) error
	Deploy(ctx context.Context, w catalog.Workload) error
	Remove(ctx context.Context, w catalog.Workload) error
	// Converge returns once the proxies involved have the configuration of every change so far.
	Converge(ctx context.Context) error
	// Probe runs the request once from the workload.
	Probe(ctx context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error)
	// AccessLog returns the entries the workload's proxy logged since the given time.
	AccessLog(ctx context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error)
	// Unobservable returns why the backend cannot observe a check from this workload (for example a
	// sidecar without Envoy), or "" when it can. The runner reports such checks as skipped.
	Unobservable(w catalog.Workload) string
	// Diagnostics writes what helps explain a failure into dir, before any cleanup.
	Diagnostics(ctx context.Context, dir string) error
	// Teardown removes everything the scenario created and restores what it changed.
	Teardown(ctx context.Context, s *catalog.Scenario) error
}

// InterceptionChecker is a backend that can prove a probe's requests went through the probing
// workload's proxy (a live mesh: the sidecar's own access log holds an entry for each). The runner
// asks it after every probe check from a workload with a sidecar; an error makes the check an
// error, never a pass or a fail: what curl saw did not cross the mesh.
type InterceptionChecker interface {
	Intercepted(ctx context.Context, from catalog.Workload, probes []string) error
}

// Predictor is a backend that, besides observing each probe, predicts it from a second oracle on
// the same converged state: the live backend with --probe curl,xds observes with curl and predicts
// from the live istiod's xDS. The runner asks it once per check, after the check is observed;
// the prediction is recorded beside the observation and never decides the verdict.
type Predictor interface {
	// PredictionOracle is the oracle of the predictions, or "" when this run predicts nothing
	// (a live backend with one probe mode).
	PredictionOracle() Oracle
	// PredictionCapabilities are the capabilities the predictions model (the live istiod's xDS
	// holds no NetworkPolicy): a check that needs one they lack is a prediction skipped for it.
	PredictionCapabilities() map[string]bool
	// Predict evaluates the request once from the workload. An error is the prediction's error,
	// never a pass; an outcome.OutOfModelError is a request outside the model.
	Predict(ctx context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error)
	// PredictedAccessLog returns the entries the predictions wrote for the workload's proxy since
	// the given time, each carrying its prediction's probe marker.
	PredictedAccessLog(ctx context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error)
}
