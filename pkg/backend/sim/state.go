package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/envoymodel"
	"github.com/egressconf/egressconf/pkg/istioinstall"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/standin"
	"github.com/egressconf/egressconf/pkg/xdsclient"
)

// state is one control-plane state: a FakeDiscoveryServer for the applied resources, mesh config
// and fixtures, and the proxies of the workloads and gateways.
type state struct {
	fake     *xds.FakeDiscoveryServer
	failer   *failer
	external http.Handler

	// pods by workload ref: IP, labels, identity, namespace.
	pods map[string]*pod
	// gatewayByHost maps a gateway Service host to its fixture.
	gatewayByHost map[string]fixtures.Gateway
	// services maps a workload Service host and port to the pod behind it.
	services map[string]map[int]serviceTarget
	// apps are the applications the model knows, by workload ref and pod port.
	apps  map[string]map[int]http.Handler
	cache map[string]*envoymodel.Proxy
	// ads reads each proxy's xDS over an ADS subscription instead of generating it directly.
	ads bool
	// profile is the install profile whose settings hold while Istio's control plane runs.
	profile istioinstall.Profile
}

// serviceTarget is the pod behind one Service port.
type serviceTarget struct {
	ref        string
	targetPort int
}

type pod struct {
	ref       string
	name      string
	namespace string
	ip        string
	labels    map[string]string
	sa        string
	gateway   bool
}

// failer satisfies istio.io/istio/pkg/test.Failer outside `go test`: a fatal error in Istio's setup
// panics with the message, and the build recovers it as an error.
type failer struct {
	cleanups []func()
	tmp      []string
}

type fatal struct{ msg string }

func (f *failer) Fail()                          { panic(fatal{"failed"}) }
func (f *failer) FailNow()                       { panic(fatal{"failed"}) }
func (f *failer) Fatal(args ...any)              { panic(fatal{fmt.Sprint(args...)}) }
func (f *failer) Fatalf(format string, a ...any) { panic(fatal{fmt.Sprintf(format, a...)}) }
func (f *failer) Log(...any)                     {}
func (f *failer) Logf(string, ...any)            {}
func (f *failer) Helper()                        {}
func (f *failer) Skip(args ...any)               { panic(fatal{"skip: " + fmt.Sprint(args...)}) }
func (f *failer) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }
func (f *failer) TempDir() string {
	d, err := os.MkdirTemp("", "egressconf-sim-")
	if err != nil {
		panic(fatal{err.Error()})
	}
	f.tmp = append(f.tmp, d)
	return d
}

func (f *failer) close() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
	for _, d := range f.tmp {
		os.RemoveAll(d)
	}
}

func (st *state) close() {
	if st.failer != nil {
		st.failer.close()
	}
}

// build makes the control plane for the backend's current state.
func (b *Backend) build() (st *state, err error) {
	st = &state{failer: &failer{}, external: b.external, pods: map[string]*pod{}, gatewayByHost: map[string]fixtures.Gateway{}, cache: map[string]*envoymodel.Proxy{},
		services: map[string]map[int]serviceTarget{}, apps: map[string]map[int]http.Handler{}}
	defer func() {
		if rec := recover(); rec != nil {
			st.close()
			if f, ok := rec.(fatal); ok {
				err = fmt.Errorf("Istio's control plane rejected the state: %s", f.msg)
			} else {
				err = fmt.Errorf("Istio's control plane failed: %v", rec)
			}
			st = nil
		}
	}()
	quietIstio()
	profile, err := istioinstall.ParseProfile(string(b.profile))
	if err != nil {
		return nil, err
	}
	st.profile = profile
	objs, err := b.kubeObjects(st)
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	for _, a := range b.objects {
		o := a.obj
		if !strings.HasSuffix(o.GroupVersionKind().Group, "istio.io") {
			continue // Kubernetes objects such as NetworkPolicy do not change Istio's config.
		}
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		cfg.WriteString("---\n")
		cfg.Write(y)
	}
	opts := xds.FakeOptions{
		MeshConfig:        meshConfigFor(b.mode, profile),
		ConfigString:      cfg.String(),
		KubernetesObjects: objs,
	}
	if b.ads {
		// Serve xDS over real gRPC on loopback: proxies then read it as they would from istiod.
		opts.ListenerBuilder = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	}
	st.fake, _ = withProfile(profile, func() (*xds.FakeDiscoveryServer, error) {
		return xds.NewFakeDiscoveryServer(st.failer, opts), nil
	})
	st.ads = b.ads
	return st, nil
}

// kubeObjects are the fixtures as Kubernetes objects, with addresses a cluster would assign.
func (b *Backend) kubeObjects(st *state) ([]runtime.Object, error) {
	var objs []runtime.Object
	nsSeen := map[string]bool{}
	addNS := func(ns catalog.Namespace) {
		if nsSeen[ns.Name] {
			return
		}
		nsSeen[ns.Name] = true
		objs = append(objs, fixtures.Namespace(ns, fixtures.Options{}))
	}
	for _, ns := range b.scenario.Spec.Namespaces {
		addNS(ns)
	}
	ip := 10
	svcIP := 10
	refs := make([]string, 0, len(b.deployed))
	for ref := range b.deployed {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		w := b.deployed[ref]
		addNS(catalog.Namespace{Name: w.Namespace})
		ws, err := fixtures.Workload(w, fixtures.Options{})
		if err != nil {
			return nil, err
		}
		p := &pod{ref: ref, name: w.Name + "-0", namespace: w.Namespace, ip: fmt.Sprintf("10.244.0.%d", ip), sa: w.SA(),
			labels: map[string]string{}}
		ip++
		for _, o := range ws {
			if d, ok := o.(*appsv1.Deployment); ok {
				// The pod's labels as the Deployment gives them: app, the fixture's, the scenario's.
				for k, v := range d.Spec.Template.Labels {
					p.labels[k] = v
				}
			}
		}
		if w.HasSidecar() {
			p.labels["security.istio.io/tlsMode"] = "istio"
		}
		st.pods[ref] = p
		if w.Fixture == "httpbin" {
			st.apps[ref] = map[int]http.Handler{fixtures.HTTPBinTargetPort: standin.NewHTTPBinHandler()}
		}
		for _, o := range ws {
			switch x := o.(type) {
			case *corev1.Service:
				x.Spec.ClusterIP = fmt.Sprintf("10.96.0.%d", svcIP)
				svcIP++
				host := x.Name + "." + x.Namespace + ".svc.cluster.local"
				st.services[host] = map[int]serviceTarget{}
				for _, sp := range x.Spec.Ports {
					st.services[host][int(sp.Port)] = serviceTarget{ref: ref, targetPort: sp.TargetPort.IntValue()}
				}
				objs = append(objs, x, endpointSlice(x, p))
			default:
				objs = append(objs, o)
			}
		}
		objs = append(objs, podObject(p, !w.HasSidecar()))
	}
	gwNames := make([]string, 0, len(b.gateways))
	for n := range b.gateways {
		gwNames = append(gwNames, n)
	}
	sort.Strings(gwNames)
	for _, n := range gwNames {
		g := b.gateways[n]
		no := false
		addNS(catalog.Namespace{Name: g.Namespace, Injection: &no})
		// The pod labels are the fixture's, as the gateway chart sets them: neither the chart nor
		// Istio's gateway injection template adds security.istio.io/tlsMode, so auto mTLS does not
		// reach a gateway unless its fixture declares the label (egressgateway-a does).
		labels := map[string]string{}
		for k, v := range g.Labels {
			labels[k] = v
		}
		p := &pod{ref: g.Ref(), name: g.Name + "-0", namespace: g.Namespace, ip: fmt.Sprintf("10.244.0.%d", ip), sa: g.ServiceAccount(), labels: labels, gateway: true}
		ip++
		st.pods[g.Ref()] = p
		st.gatewayByHost[g.Host()] = g
		svc := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: g.Namespace, Labels: g.Labels},
			Spec:       corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.0.%d", svcIP), Selector: g.Labels},
		}
		svcIP++
		for _, gp := range g.Ports {
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: gp.Name, Port: int32(gp.Number), TargetPort: intstr.FromInt(gp.TargetPort), Protocol: corev1.ProtocolTCP})
		}
		objs = append(objs, svc, endpointSlice(svc, p), podObject(p, false),
			&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: metav1.ObjectMeta{Name: p.sa, Namespace: g.Namespace}})
	}
	return objs, nil
}

func podObject(p *pod, noSidecar bool) *corev1.Pod {
	ann := map[string]string{}
	if !noSidecar {
		ann["sidecar.istio.io/status"] = `{"containers":["istio-proxy"]}`
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.namespace, Labels: p.labels, Annotations: ann},
		Spec:       corev1.PodSpec{ServiceAccountName: p.sa, NodeName: "node"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.ip, PodIPs: []corev1.PodIP{{IP: p.ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func endpointSlice(svc *corev1.Service, p *pod) *discoveryv1.EndpointSlice {
	ready := true
	es := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{p.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: p.name, Namespace: p.namespace}}},
	}
	for _, sp := range svc.Spec.Ports {
		name, port, proto := sp.Name, sp.TargetPort.IntVal, corev1.ProtocolTCP
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
	}
	return es
}

func (st *state) proxies() map[string]*pod {
	out := map[string]*pod{}
	for ref, p := range st.pods {
		if p.gateway || p.labels["security.istio.io/tlsMode"] == "istio" {
			out[ref] = p
		}
	}
	return out
}

// proxy returns the workload's proxy with the xDS Istio generates for it.
func (st *state) proxy(ref string) (p *envoymodel.Proxy, err error) {
	if p, ok := st.cache[ref]; ok {
		return p, nil
	}
	pd, ok := st.pods[ref]
	if !ok {
		return nil, fmt.Errorf("no pod for %s", ref)
	}
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("generating xDS for %s: %v", ref, rec)
		}
	}()
	// Istio's feature variables of the profile hold while the xDS is generated (or pushed).
	x, err := withProfile(st.profile, func() (*envoymodel.XDS, error) {
		if st.ads {
			return st.fetch(pd)
		}
		return st.generate(pd), nil
	})
	if err != nil {
		return nil, err
	}
	p = &envoymodel.Proxy{Ref: ref, Gateway: pd.gateway, IP: pd.ip, XDS: x, Labels: pd.labels,
		Identity: fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", pd.namespace, pd.sa)}
	st.cache[ref] = p
	return p, nil
}

// fetch subscribes to the control plane over ADS as the pod's proxy and takes its configuration.
func (st *state) fetch(pd *pod) (*envoymodel.XDS, error) {
	typ := "sidecar"
	if pd.gateway {
		typ = "router"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := xdsclient.Dial(ctx, st.fake.Listener.Addr().String(), xdsclient.Node{Type: typ, IP: pd.ip, Pod: pd.name,
		Namespace: pd.namespace, Labels: pd.labels, ServiceAccount: pd.sa, IstioVersion: ProxyIstioVersion})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.WaitSynced(ctx); err != nil {
		return nil, err
	}
	return c.Snapshot(), nil
}

// generate asks the control plane in process for the pod's proxy configuration.
func (st *state) generate(pd *pod) *envoymodel.XDS {
	typ := model.SidecarProxy
	if pd.gateway {
		typ = model.Router
	}
	mp := st.fake.SetupProxy(&model.Proxy{
		Type:            typ,
		ID:              pd.name + "." + pd.namespace,
		IPAddresses:     []string{pd.ip},
		ConfigNamespace: pd.namespace,
		Labels:          pd.labels,
		Metadata: &model.NodeMetadata{
			Namespace: pd.namespace, Labels: pd.labels, IstioVersion: ProxyIstioVersion,
			ServiceAccount: pd.sa, ClusterID: "Kubernetes",
		},
	})
	l := st.fake.Listeners(mp)
	return &envoymodel.XDS{Listeners: l, Clusters: st.fake.Clusters(mp), Routes: st.fake.RoutesFromListeners(mp, l)}
}

// Gateway implements envoymodel.World.
func (st *state) Gateway(host string, port int) (*envoymodel.Proxy, int, bool, error) {
	g, ok := st.gatewayByHost[host]
	if !ok {
		return nil, 0, false, nil
	}
	target := g.TargetPort(port)
	if target == 0 {
		return nil, 0, true, errors.New("gateway " + g.Ref() + " has no Service port " + fmt.Sprint(port))
	}
	p, err := st.proxy(g.Ref())
	return p, target, true, err
}

// Service implements envoymodel.MeshWorld: the pod behind a workload's Service port.
func (st *state) Service(host string, port int) (envoymodel.Destination, bool, error) {
	ports, known := st.services[host]
	if !known {
		return envoymodel.Destination{}, false, nil
	}
	t, ok := ports[port]
	if !ok {
		return envoymodel.Destination{}, true, &outcome.OutOfModelError{Need: fmt.Sprintf("a request to port %d of %s, which its Service does not have", port, host)}
	}
	d := envoymodel.Destination{Ref: t.ref, TargetPort: t.targetPort}
	if _, sidecar := st.proxies()[t.ref]; sidecar {
		p, err := st.proxy(t.ref)
		if err != nil {
			return envoymodel.Destination{}, true, err
		}
		d.Proxy = p
	}
	return d, true, nil
}

// App implements envoymodel.MeshWorld: the httpbin fixture's application is the stand-in's
// httpbin handler, in process; the model knows no other.
func (st *state) App(ref string, port int) http.Handler { return st.apps[ref][port] }

// dump writes a proxy's xDS as JSON, for diagnostics.
func (st *state) dump(ref string) (string, error) {
	p, err := st.proxy(ref)
	if err != nil {
		return "", err
	}
	out := map[string][]json.RawMessage{}
	m := protojson.MarshalOptions{Indent: ""}
	for _, l := range p.XDS.Listeners {
		b, _ := m.Marshal(l)
		out["listeners"] = append(out["listeners"], b)
	}
	for _, c := range p.XDS.Clusters {
		b, _ := m.Marshal(c)
		out["clusters"] = append(out["clusters"], b)
	}
	for _, r := range p.XDS.Routes {
		b, _ := m.Marshal(r)
		out["routes"] = append(out["routes"], b)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	return string(data), err
}
