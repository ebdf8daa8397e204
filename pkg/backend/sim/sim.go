// Package sim is the offline backend: every scenario against Istio's own control plane, in process,
// with no cluster. Each state (applied resources, mesh config, fixtures) becomes a FakeDiscoveryServer
// from istio.io/istio/pilot/test/xds; the xDS it generates for the calling sidecar and the egress
// gateway is evaluated by pkg/envoymodel, and the external host's answer comes from the stand-in
// server's handler in process, serving the scenario's external hosts (catalog.Scenario.ExternalHosts:
// its catalog's hosts.yaml and its spec.hosts), so a catalog's new host needs no code here.
//
// Its results are predictions by Istio's control plane with Envoy modelled, never observations of a
// live mesh; every result says so (backend.OracleOffline).
package sim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	istiolog "istio.io/istio/pkg/log"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/envoymodel"
	"github.com/egressconf/egressconf/pkg/istioinstall"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/standin"
)

// ProxyIstioVersion is the version the simulated proxies announce (the control plane's own).
const ProxyIstioVersion = "1.31.0"

// Backend is the offline backend. It is safe for one scenario at a time.
type Backend struct {
	mu sync.Mutex
	// external answers for the scenario's external hosts (set up by Setup).
	external *standin.Handler
	// externalHosts are the names it knows.
	externalHosts map[string]bool

	scenario *catalog.Scenario
	mode     meshconfig.MeshConfig_OutboundTrafficPolicy_Mode
	deployed map[string]catalog.Workload
	gateways map[string]fixtures.Gateway
	// objects is the effective object set as `kubectl apply` leaves it: one entry per object
	// (group, kind, namespace, name), in the order each was first created, holding the content of
	// the file that last applied it. Istio's fake control plane refuses the same object twice, so
	// the per-file manifests are never handed to it as they are.
	objects []appliedObject
	// files are the manifest keys applied and not deleted since: a delete of any other is an error.
	files map[string]bool
	state *state
	logs  map[string][]timedEntry
	// probes counts the probes made, for their markers.
	probes    int
	lastTrace map[string][]string
	builds    int
	// ads: proxies read their xDS over ADS from the control plane served on loopback gRPC.
	ads bool
	// profile is the install profile the control plane generates xDS for (WithProfile).
	profile istioinstall.Profile
}

// Option configures the offline backend.
type Option func(*Backend)

// WithADS makes every proxy read its configuration over an ADS subscription (pkg/xdsclient) from
// the control plane served on loopback gRPC, as the control-plane probe reads a live istiod,
// instead of taking it from the config generator directly. Results must not change.
func WithADS() Option { return func(b *Backend) { b.ads = true } }

type timedEntry struct {
	at    time.Time
	entry outcome.LogEntry
}

// New returns an offline backend whose external hosts answer as the stand-in server does.
func New(opts ...Option) *Backend {
	quietIstio()
	b := &Backend{}
	for _, o := range opts {
		o(b)
	}
	return b
}

// quietIstio silences Istio's own logging: its scopes are chatty, and scopes register lazily, so
// this runs before every control-plane build. Errors that matter come back as errors.
func quietIstio() {
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
}

// IstioVersion names the istio.io/istio module this binary was built with.
func IstioVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "istio.io/istio" {
				v := m.Version
				if m.Replace != nil {
					v = m.Replace.Version
				}
				return "istio.io/istio " + v + " (1.31 development)"
			}
		}
	}
	return "istio.io/istio (version unknown)"
}

// Info implements backend.Backend.
func (b *Backend) Info() backend.Info {
	mv := "Istio control plane in process, Envoy modelled"
	if p := b.Profile(); p != istioinstall.DefaultProfile {
		mv = "Istio control plane in process (profile " + string(p) + "), Envoy modelled"
	}
	return backend.Info{
		Name: "sim", Oracle: backend.OracleOffline, IstioVersion: IstioVersion(),
		MeshVersion: mv, Deterministic: true,
		Capabilities: map[string]bool{},
	}
}

// Setup implements backend.Backend.
func (b *Backend) Setup(_ context.Context, s *catalog.Scenario) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.close()
	b.scenario = s
	b.deployed = map[string]catalog.Workload{}
	b.gateways = map[string]fixtures.Gateway{}
	b.objects, b.files = nil, nil
	b.logs = map[string][]timedEntry{}
	b.lastTrace = map[string][]string{}
	hosts := s.ExternalHosts()
	if err := standin.ValidateHosts(hosts); err != nil {
		return fmt.Errorf("%s: external hosts: %w", s.File, err)
	}
	b.external = standin.NewHandler(hosts)
	b.externalHosts = map[string]bool{}
	for _, n := range standin.HostNames(hosts) {
		b.externalHosts[n] = true
	}
	if err := b.setMode(s.Spec.MeshPolicy); err != nil {
		return err
	}
	for _, g := range s.Spec.Gateways {
		gw, ok := fixtures.Gateways[g]
		if !ok {
			return fmt.Errorf("unknown gateway %q", g)
		}
		b.gateways[g] = gw
	}
	for _, w := range s.Spec.Workloads {
		if !w.Deferred && !w.Gateway {
			b.deployed[w.Ref()] = w
		}
	}
	return nil
}

func (b *Backend) setMode(mode string) error {
	switch mode {
	case "ALLOW_ANY", "":
		b.mode = meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY
	case "REGISTRY_ONLY":
		b.mode = meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
	default:
		return fmt.Errorf("unknown outbound traffic policy %q", mode)
	}
	b.invalidate()
	return nil
}

// SetMeshPolicy implements backend.Backend.
func (b *Backend) SetMeshPolicy(_ context.Context, mode string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.setMode(mode)
}

// appliedObject is one object of the effective set and the manifest that last applied it.
type appliedObject struct {
	id   objectID
	from string
	obj  *unstructured.Unstructured
}

// objectID identifies an object as the API server does: group (not version), kind, namespace, name.
type objectID struct{ group, kind, namespace, name string }

func idOf(o *unstructured.Unstructured) objectID {
	return objectID{o.GroupVersionKind().Group, o.GetKind(), o.GetNamespace(), o.GetName()}
}

func (b *Backend) find(id objectID) int {
	for i, a := range b.objects {
		if a.id == id {
			return i
		}
	}
	return -1
}

// Apply implements backend.Backend as `kubectl apply`: each object is created, or replaced when an
// earlier apply (of this file or another) created it; it keeps its place in creation order.
func (b *Backend) Apply(_ context.Context, m backend.Manifest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range m.Objects {
		if o.GetKind() == "ASMEgressTrafficPolicy" {
			return fmt.Errorf("%s %s/%s: no controller serves ASMEgressTrafficPolicy offline; it must be translated to native resources first", o.GetKind(), o.GetNamespace(), o.GetName())
		}
	}
	for _, o := range m.Objects {
		a := appliedObject{id: idOf(o), from: m.Key, obj: o}
		if i := b.find(a.id); i >= 0 {
			b.objects[i] = a
		} else {
			b.objects = append(b.objects, a)
		}
	}
	if b.files == nil {
		b.files = map[string]bool{}
	}
	b.files[m.Key] = true
	b.invalidate()
	return nil
}

// Delete implements backend.Backend as `kubectl delete -f`: every object the file names is deleted,
// whichever file last applied it. An object already gone (an earlier delete of another file that
// names it) is not an error; a file never applied (or deleted since) is.
func (b *Backend) Delete(_ context.Context, m backend.Manifest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.files[m.Key] {
		return fmt.Errorf("%s was not applied", m.Key)
	}
	delete(b.files, m.Key)
	for _, o := range m.Objects {
		if i := b.find(idOf(o)); i >= 0 {
			b.objects = append(b.objects[:i], b.objects[i+1:]...)
		}
	}
	b.invalidate()
	return nil
}

// Deploy implements backend.Backend.
func (b *Backend) Deploy(_ context.Context, w catalog.Workload) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deployed[w.Ref()] = w
	b.invalidate()
	return nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(_ context.Context, w catalog.Workload) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.deployed, w.Ref())
	b.invalidate()
	return nil
}

// Converge implements backend.Backend: building the control plane for the new state is the
// convergence; it happens here so that a configuration Istio rejects fails the step.
func (b *Backend) Converge(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.current()
	return err
}

// Unobservable implements backend.Backend: the offline backend predicts every workload.
func (b *Backend) Unobservable(catalog.Workload) string { return "" }

func (b *Backend) invalidate() {
	if b.state != nil {
		b.state.close()
		b.state = nil
	}
}

func (b *Backend) close() { b.invalidate() }

func (b *Backend) current() (*state, error) {
	if b.state != nil {
		return b.state, nil
	}
	st, err := b.build()
	if err != nil {
		return nil, err
	}
	b.builds++
	b.state = st
	return st, nil
}

// XDS returns the xDS Istio generates for every proxy (sidecars and gateways, by workload ref
// name@namespace) in the current state, building the state if needed.
func (b *Backend) XDS() (map[string]*envoymodel.XDS, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.scenario == nil {
		return nil, fmt.Errorf("no scenario is set up")
	}
	st, err := b.current()
	if err != nil {
		return nil, err
	}
	out := map[string]*envoymodel.XDS{}
	for ref := range st.proxies() {
		p, err := st.proxy(ref)
		if err != nil {
			return nil, err
		}
		out[ref] = p.XDS
	}
	return out, nil
}

// Builds is how many control-plane states were built (for benchmarks).
func (b *Backend) Builds() int { return b.builds }

// Probe implements backend.Backend.
func (b *Backend) Probe(_ context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.deployed[from.Ref()]; !ok {
		return outcome.Observed{}, fmt.Errorf("workload %s is not deployed", from.Ref())
	}
	st, err := b.current()
	if err != nil {
		return outcome.Observed{}, err
	}
	if host := strings.TrimSuffix(strings.ToLower(req.Host), "."); !b.externalHosts[host] && net.ParseIP(strings.Trim(host, "[]")) == nil && !b.scenario.InClusterName(host) {
		// Live, such a name is resolved by the cluster's DNS (and its upstream): not modelled.
		return outcome.Observed{}, &outcome.OutOfModelError{Need: fmt.Sprintf("name resolution of %s, which is not one of the scenario's external hosts (the catalog's hosts.yaml, spec.hosts) nor an in-cluster name", req.Host)}
	}
	var client *envoymodel.Proxy
	if from.HasSidecar() {
		if client, err = st.proxy(from.Ref()); err != nil {
			return outcome.Observed{}, err
		}
	}
	header := http.Header{}
	for _, h := range req.Headers {
		k, v, _ := strings.Cut(h, ":")
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	header.Set("User-Agent", "curl/8.11.1")
	start := time.Now()
	res, err := envoymodel.Send(client, envoymodel.Request{Method: req.Method, Scheme: req.Scheme, Host: req.Host, Port: req.Port,
		Path: req.Path, Headers: header, Body: req.Data, Namespace: from.Namespace}, st)
	if err != nil {
		return outcome.Observed{}, err
	}
	b.lastTrace[from.Ref()+" "+req.Command] = res.Trace
	// Out of model: no prediction, so no access-log entries from it either.
	obs, err := envoymodel.Predict(req, res.Response, time.Since(start))
	if err != nil {
		return outcome.Observed{}, err
	}
	now := time.Now()
	b.probes++
	marker := fmt.Sprintf("sim-%d", b.probes)
	for ref, entries := range res.Logs {
		for _, e := range entries {
			b.logs[ref] = append(b.logs[ref], timedEntry{at: now, entry: outcome.WithProbe(e, marker)})
		}
	}
	obs.Probe = marker
	return obs, nil
}

// Trace returns the hop-by-hop explanation of the last probe of a command from a workload.
func (b *Backend) Trace(from, command string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastTrace[from+" "+command]
}

// AccessLog implements backend.Backend.
func (b *Backend) AccessLog(_ context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !w.Gateway && !w.HasSidecar() {
		return nil, fmt.Errorf("%s has no proxy", w.Ref())
	}
	var out []outcome.LogEntry
	for _, e := range b.logs[w.Ref()] {
		if !e.at.Before(since) {
			out = append(out, e.entry)
		}
	}
	return out, nil
}

// Diagnostics implements backend.Backend: the applied resources, the hop traces of the last
// probes and the xDS of every proxy, as Istio generated it.
func (b *Backend) Diagnostics(_ context.Context, dir string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var applied strings.Builder
	for _, a := range b.objects {
		fmt.Fprintf(&applied, "# from %s\n", a.from)
		y, _ := yaml.Marshal(a.obj.Object)
		applied.Write(y)
		applied.WriteString("---\n")
	}
	fmt.Fprintf(&applied, "# mesh outboundTrafficPolicy: %s\n", b.mode)
	var trace strings.Builder
	keys := make([]string, 0, len(b.lastTrace))
	for k := range b.lastTrace {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&trace, "## %s\n%s\n\n", k, strings.Join(b.lastTrace[k], "\n"))
	}
	files := map[string]string{"applied.yaml": applied.String(), "trace.txt": trace.String()}
	if st, err := b.current(); err == nil {
		for ref := range st.proxies() {
			if dump, err := st.dump(ref); err == nil {
				files["xds-"+strings.ReplaceAll(ref, "@", ".")+".json"] = dump
			}
		}
	} else {
		files["control-plane-error.txt"] = err.Error()
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Teardown implements backend.Backend.
func (b *Backend) Teardown(context.Context, *catalog.Scenario) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.close()
	b.scenario, b.objects, b.files, b.deployed = nil, nil, nil, nil
	return nil
}

// External implements envoymodel.World: the stand-in server's handler, in process.
// ExternalDelay is how long the stand-in host takes to answer (envoymodel.ExternalDelays): its
// declared delay or httpbin's /delay/N, learned in process without waiting.
func (st *state) ExternalDelay(req envoymodel.ExternalRequest) (time.Duration, bool) {
	return envoymodel.ExternalDelayOf(st.external, req)
}

func (st *state) External(req envoymodel.ExternalRequest) (envoymodel.Response, error) {
	return envoymodel.ServeExternal(st.external, req)
}

// meshConfigFor is Istio's default mesh config with the outbound policy set and the telemetry
// of the install profile (applyMeshProfile).
func meshConfigFor(mode meshconfig.MeshConfig_OutboundTrafficPolicy_Mode, p istioinstall.Profile) *meshconfig.MeshConfig {
	m := mesh.DefaultMeshConfig()
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: mode}
	m.AccessLogFile = "/dev/stdout"
	applyMeshProfile(m, p)
	return m
}
