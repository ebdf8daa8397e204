package xdsprobe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/gvk"
	istiolog "istio.io/istio/pkg/log"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/pkg/istiovalidate"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/standin"
	"github.com/egressconf/egressconf/suites"
)

// cluster is a tiny cluster: sleep@demo-frontend with a sidecar and the istio-egressgateway.
func clusterObjects() []runtime.Object {
	ready := true
	pod := func(name, ns, ip, sa string, labels map[string]string, containers []corev1.Container) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: containers, NodeName: "node"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
	}
	gwLabels := map[string]string{"istio": "egressgateway", "app": "istio-egressgateway", "security.istio.io/tlsMode": "istio"}
	gwPort := func(name string, p, t int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, TargetPort: intstr.FromInt32(t), Protocol: corev1.ProtocolTCP}
	}
	name80, name443, p80, p443, tcp := "http2", "https", int32(8080), int32(8443), corev1.ProtocolTCP
	return []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-frontend", Labels: map[string]string{"istio-injection": "enabled"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		pod("sleep-0", "demo-frontend", "10.244.0.10", "sleep", map[string]string{"app": "sleep", "security.istio.io/tlsMode": "istio"},
			[]corev1.Container{{Name: "sleep"}, {Name: "istio-proxy", Args: []string{"proxy", "sidecar"}}}),
		pod("istio-egressgateway-0", "istio-system", "10.244.0.20", "istio-egressgateway", gwLabels,
			[]corev1.Container{{Name: "istio-proxy", Args: []string{"proxy", "router"}}}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istio-egressgateway", Namespace: "istio-system", Labels: gwLabels},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20", Selector: gwLabels, Ports: []corev1.ServicePort{gwPort(name80, 80, p80), gwPort(name443, 443, p443)}}},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "istio-egressgateway", Namespace: "istio-system", Labels: map[string]string{discoveryv1.LabelServiceName: "istio-egressgateway"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.20"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "istio-egressgateway-0", Namespace: "istio-system"}}},
			Ports: []discoveryv1.EndpointPort{{Name: &name80, Port: &p80, Protocol: &tcp}, {Name: &name443, Port: &p443, Protocol: &tcp}},
		},
	}
}

// g1Config is G1's resources after the deny step, from the built-in catalog.
func g1Config(t *testing.T) string {
	t.Helper()
	c, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Group("G1")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, st := range s.Spec.Steps[:3] {
		for _, r := range st.Apply {
			objs, err := s.Objects(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				y, _ := yaml.Marshal(o.Object)
				b.WriteString("---\n")
				b.Write(y)
			}
		}
	}
	return b.String()
}

func start(t *testing.T) (*xds.FakeDiscoveryServer, *Prober) {
	t.Helper()
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	objs := clusterObjects()
	fake := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:      g1Config(t),
		KubernetesObjects: objs,
		ListenerBuilder:   func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
	})
	p := New(k8sfake.NewClientset(objs...), fake.Listener.Addr().String(), standin.NewHandler(builtinHosts(t)))
	p.Settle = 10 * time.Second
	t.Cleanup(p.Close)
	return fake, p
}

func mustCurl(t *testing.T, cmd string) *probe.Request {
	t.Helper()
	r, err := probe.ParseCurl(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestProbeOverADS: the sleep pod's and the gateway's virtual proxies read their xDS over ADS; the
// request is denied at the gateway by G1's AuthorizationPolicy, and the gateway logs the policy.
func TestProbeOverADS(t *testing.T) {
	_, p := start(t)
	ctx := context.Background()
	res, err := p.Probe(ctx, "demo-frontend", "sleep", true, mustCurl(t, "curl -I http://www.aliyun.com"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Observed.HTTPCode != 403 || res.Observed.Headers["server"] != "envoy" || res.Observed.Headers["content-length"] != "19" {
		t.Fatalf("observed %s %v\n%s", res.Observed.Summary(), res.Observed.Headers, strings.Join(res.Trace, "\n"))
	}
	gw := res.Logs["istio-egressgateway@istio-system"]
	if len(gw) != 1 || gw[0]["response_code_details"] != "rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-demo-frontend]-rule[0]]" {
		t.Fatalf("gateway log %v", gw)
	}
	// The no-sidecar path goes straight to the external host (the stand-in): 301.
	res, err = p.Probe(ctx, "demo-frontend", "sleep", false, mustCurl(t, "curl -I http://www.aliyun.com"))
	if err != nil || res.Observed.HTTPCode != 301 {
		t.Fatalf("no sidecar: %v %v", res.Observed.Summary(), err)
	}
	// A pod that does not exist is an error, never an outcome.
	if _, err := p.Probe(ctx, "demo-frontend", "nosuchapp", true, mustCurl(t, "curl -I http://www.aliyun.com")); err == nil || !strings.Contains(err.Error(), "no running, ready pod") {
		t.Fatalf("missing pod: %v", err)
	}
}

// TestSentinelConvergence: a probe waits for the push that carries the wanted sentinel; without it,
// it fails instead of evaluating stale configuration.
func TestSentinelConvergence(t *testing.T) {
	fake, p := start(t)
	ctx := context.Background()
	req := mustCurl(t, "curl -I http://www.aliyun.com")
	if _, err := p.Probe(ctx, "demo-frontend", "sleep", true, req); err != nil {
		t.Fatal(err)
	}
	create := func(gen int) {
		u := Sentinel(gen, nil)
		se := &networking.ServiceEntry{Hosts: []string{u.Spec.Hosts[0]}, ExportTo: []string{"*"},
			Location: networking.ServiceEntry_MESH_EXTERNAL, Resolution: networking.ServiceEntry_STATIC,
			Ports: []*networking.ServicePort{{Number: 1, Name: "tcp-sentinel", Protocol: "TCP"}}, Endpoints: []*networking.WorkloadEntry{{Address: "192.0.2.1"}}}
		cfg := config.Config{Meta: config.Meta{GroupVersionKind: gvk.ServiceEntry, Name: SentinelName, Namespace: SentinelNamespace}, Spec: se}
		var err error
		if gen == 1 {
			_, err = fake.Store().Create(cfg)
		} else {
			_, err = fake.Store().Update(cfg)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, gen := range []int{1, 2} {
		p.Want(gen)
		create(gen)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := p.Converge(cctx); err != nil {
			t.Fatalf("converge g%d: %v", gen, err)
		}
		cancel()
		for key, c := range p.clients {
			if g := sentinelGen(c.Snapshot()); g != gen {
				t.Errorf("%s carries sentinel g%d, want g%d", key, g, gen)
			}
		}
	}
	// A generation that never comes: the probe errors after Settle.
	p.Settle = 500 * time.Millisecond
	p.Want(9)
	if _, err := p.Probe(ctx, "demo-frontend", "sleep", true, req); err == nil || !strings.Contains(err.Error(), "sentinel g9") {
		t.Fatalf("stale configuration was evaluated: %v", err)
	}
}

func TestSentinelIsValidIstioConfig(t *testing.T) {
	// Validated as the JSON the typed clientset sends, strictly as istiod's webhook reads it.
	raw, err := json.Marshal(Sentinel(3, map[string]string{"app.kubernetes.io/managed-by": "egressconf"}))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if err := istiovalidate.Object(u); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedSlice(u.Object, "spec", "ports"); len(got) != 2 || u.GetName() != SentinelName || u.GetNamespace() != SentinelNamespace ||
		u.GetLabels()["app.kubernetes.io/managed-by"] != "egressconf" {
		t.Fatalf("sentinel as sent: %s", raw)
	}
	// Enums go out as names (MESH_EXTERNAL, the zero value, is omitted and is the default).
	if res, _, _ := unstructured.NestedString(u.Object, "spec", "resolution"); res != "STATIC" {
		t.Fatalf("resolution %q in %s", res, raw)
	}
}

// The probe predicts with the run's own ready pod: a cluster's own sleep in the same namespace, or
// the run's pod before it is ready, is never taken for it.
func TestPodOfTakesTheRunsReadyPod(t *testing.T) {
	mk := func(name string, lbl map[string]string, ready bool) *corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: lbl},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	}
	cs := k8sfake.NewClientset(
		mk("theirs", map[string]string{"app": "sleep"}, true),
		mk("ours-starting", map[string]string{"app": "sleep", "egressconf.io/run": "r1"}, false),
	)
	p := New(cs, "unused:0", nil)
	p.WorkloadLabels = map[string]string{"egressconf.io/run": "r1"}
	sel := map[string]string{"app": "sleep", "egressconf.io/run": "r1"}
	if pod, err := p.podOf(context.Background(), "default", labelsOf(sel)); err == nil {
		t.Fatalf("took %s: the run's pod is not ready and the other is not the run's", pod.Name)
	}
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), mk("ours", sel, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if pod, err := p.podOf(context.Background(), "default", labelsOf(sel)); err != nil || pod.Name != "ours" {
		t.Errorf("podOf = %v, %v; want the run's ready pod", pod, err)
	}
}

// A gateway lookup that fails is an error, never "not a gateway".
func TestGatewayLookupFailureIsAnError(t *testing.T) {
	cs := k8sfake.NewClientset()
	cs.PrependReactor("get", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden: services is not allowed")
	})
	w := &world{p: New(cs, "unused:0", nil), ctx: context.Background()}
	if _, _, _, err := w.Gateway("istio-egressgateway.istio-system.svc.cluster.local", 80); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("Gateway with a failing API: %v, want the error", err)
	}
	none := &world{p: New(k8sfake.NewClientset(), "unused:0", nil), ctx: context.Background()}
	if _, _, isGW, err := none.Gateway("nope.default.svc.cluster.local", 80); err != nil || isGW {
		t.Errorf("Gateway of a missing Service: %v %v, want not a gateway", isGW, err)
	}
}

func labelsOf(m map[string]string) labels.Selector { return labels.SelectorFromSet(m) }

// builtinHosts are the built-in catalog's external hosts.
func builtinHosts(t *testing.T) []standin.Host {
	t.Helper()
	c, err := suites.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return c.Hosts
}
