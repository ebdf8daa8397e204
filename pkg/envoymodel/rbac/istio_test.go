package rbac

// Tests on the RBAC filters Istio itself generates (istio.io/istio pilot config generation, run in
// process by pilot/test/xds), for the egress-gateway AuthorizationPolicy forms in the seeds. Every
// test checks both the decision and that the evaluated filters really came out of the generated
// listener (non-empty, expected policy names), so none can pass on an empty filter list.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	istiolog "istio.io/istio/pkg/log"
)

// ---- seed configuration (copied from /work/shared/seeds, namespaces made explicit) ----

// bigbang-egress-authz.txt, external-google.yaml (applied -n istio-system).
const bbGoogleHTTP = `
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: google
spec:
  hosts:
  - developers.google.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-google-egressgateway
spec:
  selector:
    istio: egressgateway # use Istio default gateway implementation
  servers:
  - port:
      number: 80
      name: https-port-for-tls-origination
      protocol: HTTPS
    hosts:
    - developers.google.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-google
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: google
    trafficPolicy:
      portLevelSettings:
      - port:
          number: 80
        tls:
          mode: ISTIO_MUTUAL
          sni: developers.google.com
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-google-through-egress-gateway
spec:
  hosts:
  - developers.google.com
  gateways:
  - istio-google-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh # apply to sidecars in the mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: google
        port:
          number: 80
  - match:
    - gateways:
      - istio-google-egressgateway
      port: 80
    route:
    - destination:
        host: developers.google.com
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-tls-for-developers-google-com
spec:
  host: developers.google.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to developers.google.com
`

// bigbang-egress-authz.txt, external-yahoo.yaml (applied -n istio-system).
const bbYahooHTTP = `
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: yahoo
spec:
  hosts:
  - developer.yahoo.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-yahoo-egressgateway
spec:
  selector:
    istio: egressgateway # use Istio default gateway implementation
  servers:
  - port:
      number: 80
      name: https-port-for-tls-origination
      protocol: HTTPS
    hosts:
    - developer.yahoo.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-yahoo
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: yahoo
    trafficPolicy:
      portLevelSettings:
      - port:
          number: 80
        tls:
          mode: ISTIO_MUTUAL
          sni: developer.yahoo.com
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-yahoo-through-egress-gateway
spec:
  hosts:
  - developer.yahoo.com
  gateways:
  - istio-yahoo-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh # apply to sidecars in the mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: yahoo
        port:
          number: 80
  - match:
    - gateways:
      - istio-yahoo-egressgateway
      port: 80
    route:
    - destination:
        host: developer.yahoo.com
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-tls-for-developer-yahoo-com
spec:
  host: developer.yahoo.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to developer.yahoo.com
`

// bigbang-egress-authz.txt, external-google-https.yaml (TLS variant, -n istio-system).
const bbGoogleTLS = `
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: google
spec:
  hosts:
  - developers.google.com
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: google-tls
    protocol: TLS
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-google-egressgateway
spec:
  selector:
    istio: egressgateway # use Istio default gateway implementation
  servers:
  - port:
      number: 443
      name: https-port-for-tls-origination-google
      protocol: TLS
    hosts:
    - developers.google.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-google
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: google
    trafficPolicy:
      portLevelSettings:
      - port:
          number: 443
        tls:
          mode: ISTIO_MUTUAL
          sni: developers.google.com
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-google-through-egress-gateway
spec:
  hosts:
  - developers.google.com
  gateways:
  - istio-google-egressgateway
  - mesh
  tls:
  - match:
    - gateways:
      - mesh # apply to sidecars in the mesh
      port: 443
      sniHosts:
      - developers.google.com
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: google
        port:
          number: 443
      weight: 100
  tcp:
  - match:
    - gateways:
      - istio-google-egressgateway
      port: 443
    route:
    - destination:
        host: developers.google.com
        port:
          number: 443
      weight: 100
`

// bigbang-egress-authz.txt, external-yahoo-https.yaml (TLS variant, -n istio-system).
const bbYahooTLS = `
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: yahoo
spec:
  hosts:
  - developer.yahoo.com
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: yahoo-tls
    protocol: TLS
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-yahoo-egressgateway
spec:
  selector:
    istio: egressgateway # use Istio default gateway implementation
  servers:
  - port:
      number: 443
      name: https-port-for-tls-origination-yahoo
      protocol: TLS
    hosts:
    - developer.yahoo.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-yahoo
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: yahoo
    trafficPolicy:
      portLevelSettings:
      - port:
          number: 443
        tls:
          mode: ISTIO_MUTUAL
          sni: developer.yahoo.com
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-yahoo-through-egress-gateway
spec:
  hosts:
  - developer.yahoo.com
  gateways:
  - istio-yahoo-egressgateway
  - mesh
  tls:
  - match:
    - gateways:
      - mesh # apply to sidecars in the mesh
      port: 443
      sniHosts:
      - developer.yahoo.com
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: yahoo
        port:
          number: 443
      weight: 100
  tcp:
  - match:
    - gateways:
      - istio-yahoo-egressgateway
      port: 443
    route:
    - destination:
        host: developer.yahoo.com
        port:
          number: 443
      weight: 100
`

// authz-policy-allow-nothing.yaml.
const bbAllowNothing = `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
 name: allow-nothing
 namespace: istio-system
spec:
  {}
`

// authz-policy-allow-google.yaml, applied in default (no namespace in the file: kubectl's default).
const bbAllowGoogleFromDefault = `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: external-allow-developers-google-com
  # No ns means that applies to all ns in a mesh
spec:
  # allow-list for the identities that can call the host
  action: ALLOW
  rules:
  - from:
    - source:
        namespaces: ["default"]
    to:
    - operation:
        methods: ["GET"]
        hosts:
        - developers.google.com
`

// authz-policy-deny-google.yaml and authz-policy-deny-yahoo.yaml (-n istio-system).
const bbDenyByNamespace = `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: external-deny-developers-google-com
spec:
  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["otherns"]
    to:
    - operation:
        hosts:
        - developers.google.com
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: external-deny-developer-yahoo-com
spec:
  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["default"]
    to:
    - operation:
        hosts:
        - developer.yahoo.com
`

// authz-policy-deny-google-custom.yaml and authz-policy-deny-yahoo-custom.yaml (-n istio-system).
const bbDenyByPrincipalSNI = `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: external-deny-developers-google-com
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/otherns/sa/sleep-yahoo"]
    when:
    - key: connection.sni
      values:
      - developers.google.com
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: external-deny-developer-yahoo-com
spec:
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/otherns/sa/sleep-google"]
    when:
    - key: connection.sni
      values:
      - developer.yahoo.com
`

// asm-authz-deny-namespace-egress.txt (G1): ServiceEntry, Gateway, DestinationRule as in the seed;
// the seed shows the VirtualService only as a table, so it is written out here; the policy is the
// console form (DENY, gateway scope egressgateway, source namespace demo-frontend) as YAML.
const g1Config = `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: aliyuncom-ext
  namespace: istio-system
spec:
  hosts:
  - www.aliyun.com
  location: MESH_EXTERNAL
  ports:
  - name: http
    number: 80
    protocol: HTTP
  - name: tls
    number: 443
    protocol: TLS
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: istio-egressgateway
  namespace: istio-system
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTPS
    tls:
      mode: ISTIO_MUTUAL
    hosts:
    - '*'
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: target-egress-gateway
  namespace: demo-frontend
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: target-egress-gateway-mTLS
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      tls:
        mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: example-com-through-egress-gateway
  namespace: demo-frontend
spec:
  exportTo:
  - istio-system
  - demo-frontend
  hosts:
  - www.aliyun.com
  gateways:
  - istio-system/istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: target-egress-gateway-mTLS
        port:
          number: 80
  - match:
    - gateways:
      - istio-system/istio-egressgateway
      port: 80
    route:
    - destination:
        host: www.aliyun.com
        port:
          number: 80
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: deny-demo-frontend
  namespace: istio-system
spec:
  action: DENY
  selector:
    matchLabels:
      istio: egressgateway
  rules:
  - from:
    - source:
        namespaces: ["demo-frontend"]
`

// G6: the native rendering of the ETP (www.httpbin.org, httpbin.org port 80 HTTP through the
// egress gateway egressgateway-a over ISTIO_MUTUAL) and the seed's AuthorizationPolicy verbatim.
// DRIFT-GWNAME: the gateway is egressgateway-a throughout (label istio: egressgateway-a).
const g6Config = `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: httpbin
  namespace: istio-system
spec:
  hosts:
  - www.httpbin.org
  - httpbin.org
  location: MESH_EXTERNAL
  ports:
  - name: http
    number: 80
    protocol: HTTP
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: egressgateway-a-httpbin
  namespace: istio-system
spec:
  selector:
    istio: egressgateway-a
  servers:
  - port:
      number: 80
      name: https-mtls
      protocol: HTTPS
    tls:
      mode: ISTIO_MUTUAL
    hosts:
    - www.httpbin.org
    - httpbin.org
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: httpbin-through-egressgateway-a
  namespace: istio-system
spec:
  hosts:
  - www.httpbin.org
  - httpbin.org
  gateways:
  - istio-system/egressgateway-a-httpbin
  http:
  - route:
    - destination:
        host: www.httpbin.org
        port:
          number: 80
---
kind: AuthorizationPolicy
apiVersion: security.istio.io/v1beta1
metadata:
  name: sleep-a-egress-www-httpbin-org
  namespace: istio-system
spec:
  action: DENY
  rules:
    - to:
        - operation:
            hosts:
            - www.httpbin.org
            - httpbin.org
            methods:
              - POST
      from:
        - source:
            namespaces: ["mytest"]
  selector:
    matchLabels:
      istio: egressgateway-a
`

// inNamespace puts metadata.namespace: ns into every document that has none (the seeds apply
// their files with kubectl -n).
func inNamespace(ns, yaml string) string {
	var out []string
	for _, doc := range strings.Split(yaml, "\n---") {
		if !strings.Contains(doc, "\n  namespace:") && !strings.Contains(doc, "\n namespace:") {
			doc = strings.Replace(doc, "\nmetadata:\n", "\nmetadata:\n  namespace: "+ns+"\n", 1)
		}
		out = append(out, doc)
	}
	return strings.Join(out, "\n---")
}

// ---- the egress gateway ----

const gatewayPodIP = "10.244.0.20"

type gateway struct {
	name, namespace string
	labels          map[string]string
}

var (
	defaultEgress = gateway{"istio-egressgateway", "istio-system", map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}}
	egressA       = gateway{"egressgateway-a", "istio-system", map[string]string{"app": "egressgateway-a", "istio": "egressgateway-a"}}
)

func (g gateway) podName() string { return g.name + "-7c9d8f6b5-abcde" }

// objects are the gateway's Service (80->8080, 443->8443, as the istio chart's egress gateway) and
// its Pod.
func (g gateway) objects(podIP string) []runtime.Object {
	return []runtime.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: g.name, Namespace: g.namespace, Labels: g.labels},
			Spec: corev1.ServiceSpec{
				ClusterIP: "10.96.0.50",
				Selector:  g.labels,
				Ports: []corev1.ServicePort{
					{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
					{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443), Protocol: corev1.ProtocolTCP},
				},
			},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: g.podName(), Namespace: g.namespace, Labels: g.labels},
			Spec: corev1.PodSpec{
				ServiceAccountName: g.name + "-service-account",
				Containers:         []corev1.Container{{Name: "istio-proxy", Image: "proxyv2"}},
			},
			Status: corev1.PodStatus{
				Phase:      corev1.PodRunning,
				PodIP:      podIP,
				PodIPs:     []corev1.PodIP{{IP: podIP}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			},
		},
	}
}

var quietOnce sync.Once

func quietIstio() {
	quietOnce.Do(func() {
		for _, s := range istiolog.Scopes() {
			s.SetOutputLevel(istiolog.ErrorLevel)
		}
	})
}

// gatewayConfig is one generated configuration of a gateway proxy.
type gatewayConfig struct {
	t         *testing.T
	sim       *simulation.Simulation
	listeners []*listenerv3.Listener
}

// generate runs Istio's config generation for config and returns the gateway g's listeners.
func generate(t *testing.T, g gateway, config string, extra ...gateway) *gatewayConfig {
	t.Helper()
	quietIstio()
	m := mesh.DefaultMeshConfig()
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	objs := g.objects(gatewayPodIP)
	for i, e := range extra {
		objs = append(objs, e.objects(fmt.Sprintf("10.244.0.%d", 30+i))...)
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: config, KubernetesObjects: objs, MeshConfig: m})
	p := s.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ID:              g.podName() + "." + g.namespace,
		ConfigNamespace: g.namespace,
		IPAddresses:     []string{gatewayPodIP},
		Labels:          g.labels,
		Metadata: &model.NodeMetadata{
			Namespace:    g.namespace,
			Labels:       g.labels,
			IstioVersion: "1.31.0",
		},
	})
	sim := simulation.NewSimulation(t, s, p)
	return &gatewayConfig{t: t, sim: sim, listeners: sim.Listeners}
}

// chainFor runs Istio's simulation for an mTLS connection from a sidecar (SNI sni) to the
// gateway's port and returns the listener and filter chain Envoy would pick. Istio's gateway filter
// chains are unnamed, so the chain is selected by its filter_chain_match (server_names, TLS) and
// cross-checked against the simulation: its route configuration (HTTP) or tcp_proxy cluster (TCP)
// must be the one the simulation matched.
func (gc *gatewayConfig) chainFor(port int, sni, host string, protocol simulation.Protocol) (*listenerv3.Listener, *listenerv3.FilterChain) {
	t := gc.t
	t.Helper()
	res := gc.sim.Run(simulation.Call{
		Port: port, Protocol: protocol, TLS: simulation.MTLS, Sni: sni, HostHeader: host,
		CallMode: simulation.CallModeGateway,
	})
	if res.Error != nil || res.ListenerMatched == "" {
		t.Fatalf("simulation: port %d SNI %s: %+v (listeners %v)", port, sni, res, gc.listenerNames())
	}
	var l *listenerv3.Listener
	for _, cand := range gc.listeners {
		if cand.GetName() == res.ListenerMatched {
			l = cand
		}
	}
	if l == nil {
		t.Fatalf("listener %q not found", res.ListenerMatched)
	}
	fc := chainForSNI(t, l, sni)
	got, err := chainTarget(fc)
	if err != nil {
		t.Fatal(err)
	}
	want := res.RouteConfigMatched
	if protocol == simulation.TCP {
		want = res.ClusterMatched
	}
	if got != want {
		t.Fatalf("chain selected for SNI %s targets %q, the simulation matched %q", sni, got, want)
	}
	return l, fc
}

// chainForSNI picks the filter chain Envoy would for a TLS connection with SNI sni: the chains
// whose server_names hold sni exactly, else a matching *.suffix, else those without server_names;
// exactly one must remain.
func chainForSNI(t *testing.T, l *listenerv3.Listener, sni string) *listenerv3.FilterChain {
	t.Helper()
	var exactM, wildM, noneM []*listenerv3.FilterChain
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if tp := m.GetTransportProtocol(); tp != "" && tp != "tls" {
			continue
		}
		names := m.GetServerNames()
		switch {
		case len(names) == 0:
			noneM = append(noneM, fc)
		case slices.Contains(names, sni):
			exactM = append(exactM, fc)
		default:
			for _, n := range names {
				if strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) {
					wildM = append(wildM, fc)
					break
				}
			}
		}
	}
	for _, set := range [][]*listenerv3.FilterChain{exactM, wildM, noneM} {
		if len(set) == 1 {
			return set[0]
		}
		if len(set) > 1 {
			t.Fatalf("listener %s: %d filter chains match SNI %s", l.GetName(), len(set), sni)
		}
	}
	t.Fatalf("listener %s: no filter chain for SNI %s", l.GetName(), sni)
	return nil
}

// chainTarget is the RDS route configuration name of the chain's HttpConnectionManager, or the
// cluster of its tcp_proxy.
func chainTarget(fc *listenerv3.FilterChain) (string, error) {
	for _, f := range fc.GetFilters() {
		switch f.GetTypedConfig().GetTypeUrl() {
		case HCMTypeURL:
			hcm := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
				return "", err
			}
			return hcm.GetRds().GetRouteConfigName(), nil
		case "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
			tp := &tcpproxyv3.TcpProxy{}
			if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
				return "", err
			}
			return tp.GetCluster(), nil
		}
	}
	return "", fmt.Errorf("chain %q has neither HCM nor tcp_proxy", fc.GetName())
}

func (gc *gatewayConfig) listenerNames() []string {
	var n []string
	for _, l := range gc.listeners {
		n = append(n, l.GetName())
	}
	return n
}

// rbacFor extracts the RBAC filters of the chain and checks they are what Istio should have
// generated: the wanted number of HTTP and network filters, each enforcing with the wanted
// actions and policy names, and nothing the model does not support.
func (gc *gatewayConfig) rbacFor(l *listenerv3.Listener, fc *listenerv3.FilterChain, wantHTTP, wantNetwork map[string][]string) []*RBACFilter {
	t := gc.t
	t.Helper()
	filters, err := FiltersForChain(l, fc)
	if err != nil {
		t.Fatalf("FiltersForChain(%s, %s): %v", l.GetName(), fc.GetName(), err)
	}
	got := map[Layer]map[string][]string{LayerHTTP: {}, LayerNetwork: {}}
	for _, f := range filters {
		if f.Rules == nil {
			t.Fatalf("%s filter without enforced rules", f.Layer)
		}
		action := f.Rules.GetAction().String()
		got[f.Layer][action] = append(got[f.Layer][action], sortedPolicyNames(f.Rules)...)
	}
	for layer, want := range map[Layer]map[string][]string{LayerHTTP: wantHTTP, LayerNetwork: wantNetwork} {
		if want == nil {
			want = map[string][]string{}
		}
		for _, names := range want {
			sort.Strings(names)
		}
		if fmt.Sprint(got[layer]) != fmt.Sprint(want) {
			t.Errorf("listener %s chain %s: %s RBAC policies = %v, want %v", l.GetName(), fc.GetName(), layer, got[layer], want)
		}
	}
	if len(filters) == 0 {
		t.Fatal("no RBAC filter in the generated chain")
	}
	if err := Validate(filters); err != nil {
		t.Errorf("generated RBAC outside the model: %v", err)
	}
	return filters
}

// ---- requests ----

const (
	google = "developers.google.com"
	yahoo  = "developer.yahoo.com"
)

func spiffe(ns, sa string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa }

// httpAtGateway is the request the egress gateway sees from a sidecar that sent `curl -I http://host`
// through it: mTLS with the client's identity, SNI host (the DestinationRule's sni), HEAD.
func httpAtGateway(principal, host string, port uint32) Request {
	return Request{
		Principal: principal, SourceIP: "10.244.1.7", DestinationIP: gatewayPodIP, DestinationPort: port,
		RequestedServerName: host, HTTP: true, Method: "HEAD", Host: host, Path: "/",
		Headers: map[string]string{"user-agent": "curl/8.5.0", "accept": "*/*"},
	}
}

// tlsAtGateway is the TCP connection the egress gateway sees for `curl https://host` in the TLS
// variant: the sidecar's mTLS with SNI host; the client's own TLS is opaque payload.
func tlsAtGateway(principal, host string) Request {
	return Request{
		Principal: principal, SourceIP: "10.244.1.7", DestinationIP: gatewayPodIP, DestinationPort: 8443,
		RequestedServerName: host,
	}
}

type expectation struct {
	id     string
	req    Request
	allow  bool
	policy string // for a denial: the DENY policy, "" for an ALLOW-filter denial
}

func checkAll(t *testing.T, filters []*RBACFilter, exps []expectation) {
	t.Helper()
	for _, e := range exps {
		d, err := Evaluate(filters, e.req)
		if err != nil {
			t.Errorf("%s: %v", e.id, err)
			continue
		}
		if d.Allowed != e.allow || (!e.allow && d.MatchedPolicy != e.policy) {
			t.Errorf("%s: %s -> %s; want allowed=%v policy=%q", e.id, e.req.Principal, d, e.allow, e.policy)
		}
	}
}

func policyName(ns, name string, rule int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", ns, name, rule)
}

// ---- G1 ----

func TestIstioG1DenyNamespace(t *testing.T) {
	gc := generate(t, defaultEgress, g1Config)
	l, fc := gc.chainFor(8080, "www.aliyun.com", "www.aliyun.com", simulation.HTTP)
	if l.GetName() != "0.0.0.0_8080" {
		t.Errorf("listener %s, want 0.0.0.0_8080 (Gateway port 80 -> targetPort 8080)", l.GetName())
	}
	deny := policyName("istio-system", "deny-demo-frontend", 0)
	filters := gc.rbacFor(l, fc, map[string][]string{"DENY": {deny}}, nil)

	// The generated policy is the one the offline notes show: any permission, principal
	// authenticated safe_regex .*/ns/demo-frontend/.*
	js, _ := protojson.Marshal(filters[0].Rules.GetPolicies()[deny])
	if !strings.Contains(string(js), `".*/ns/demo-frontend/.*"`) || !strings.Contains(string(js), `"any":true`) {
		t.Errorf("unexpected generated policy: %s", js)
	}

	checkAll(t, filters, []expectation{
		{"DENYNS-03/06", httpAtGateway(spiffe("demo-frontend", "sleep"), "www.aliyun.com", 8080), false, deny},
		{"DENYNS other namespace", httpAtGateway(spiffe("default", "sleep"), "www.aliyun.com", 8080), true, ""},
		{"DENYNS namespace prefix is not the namespace", httpAtGateway(spiffe("demo-frontend-2", "sleep"), "www.aliyun.com", 8080), true, ""},
	})
	d, _ := Evaluate(filters, httpAtGateway(spiffe("demo-frontend", "sleep"), "www.aliyun.com", 8080))
	if d.Layer != LayerHTTP || d.ResponseCodeDetails() != "rbac_access_denied_matched_policy["+deny+"]" {
		t.Errorf("decision %s", d)
	}
}

// ---- BigBang: allow-nothing ----

func TestIstioBigBangAllowNothing(t *testing.T) {
	routing := inNamespace("istio-system", bbGoogleHTTP+"\n---\n"+bbYahooHTTP)
	allowNothing := policyName("istio-system", "allow-nothing", 0)

	four := func(id string) []expectation {
		return []expectation{
			{id + " POD1->yahoo", httpAtGateway(spiffe("default", "sleep"), yahoo, 8080), false, ""},
			{id + " POD2->google", httpAtGateway(spiffe("otherns", "sleep"), google, 8080), false, ""},
			{id + " POD1->google", httpAtGateway(spiffe("default", "sleep"), google, 8080), false, ""},
			{id + " POD2->yahoo", httpAtGateway(spiffe("otherns", "sleep"), yahoo, 8080), false, ""},
		}
	}

	t.Run("BB-AN-01 allow-nothing", func(t *testing.T) {
		gc := generate(t, defaultEgress, routing+"\n---\n"+bbAllowNothing)
		for _, host := range []string{google, yahoo} {
			l, fc := gc.chainFor(8080, host, host, simulation.HTTP)
			filters := gc.rbacFor(l, fc, map[string][]string{"ALLOW": {allowNothing}}, nil)
			checkAll(t, filters, four("BB-AN-01"))
			d, _ := Evaluate(filters, httpAtGateway(spiffe("default", "sleep"), host, 8080))
			if d.Action != ActionAllow || d.ResponseCodeDetails() != "rbac_access_denied_matched_policy[none]" {
				t.Errorf("allow-nothing decision %s", d)
			}
		}
	})

	t.Run("BB-AN-02 plus ALLOW in default", func(t *testing.T) {
		gc := generate(t, defaultEgress, routing+"\n---\n"+bbAllowNothing+"\n---\n"+inNamespace("default", bbAllowGoogleFromDefault))
		l, fc := gc.chainFor(8080, google, google, simulation.HTTP)
		// The policy in default selects nothing in istio-system: only allow-nothing is generated.
		filters := gc.rbacFor(l, fc, map[string][]string{"ALLOW": {allowNothing}}, nil)
		checkAll(t, filters, four("BB-AN-02"))
		get := httpAtGateway(spiffe("default", "sleep"), google, 8080)
		get.Method = "GET"
		checkAll(t, filters, []expectation{{"BB-AN-02 even GET", get, false, ""}})
	})

	t.Run("derived: the ALLOW policy in the root namespace would apply, but not to curl -I", func(t *testing.T) {
		gc := generate(t, defaultEgress, routing+"\n---\n"+bbAllowNothing+"\n---\n"+inNamespace("istio-system", bbAllowGoogleFromDefault))
		l, fc := gc.chainFor(8080, google, google, simulation.HTTP)
		allowGoogle := policyName("istio-system", "external-allow-developers-google-com", 0)
		filters := gc.rbacFor(l, fc, map[string][]string{"ALLOW": {allowNothing, allowGoogle}}, nil)
		get := httpAtGateway(spiffe("default", "sleep"), google, 8080)
		get.Method = "GET"
		getOther := httpAtGateway(spiffe("otherns", "sleep"), google, 8080)
		getOther.Method = "GET"
		checkAll(t, filters, []expectation{
			{"GET from default", get, true, ""},
			{"HEAD (curl -I) from default", httpAtGateway(spiffe("default", "sleep"), google, 8080), false, ""},
			{"GET from otherns", getOther, false, ""},
		})
		d, _ := Evaluate(filters, get)
		if d.MatchedPolicy != allowGoogle {
			t.Errorf("allowed by %q, want %q", d.MatchedPolicy, allowGoogle)
		}
	})
}

// ---- BigBang: DENY by namespace and host ----

func TestIstioBigBangDenyByNamespace(t *testing.T) {
	gc := generate(t, defaultEgress, inNamespace("istio-system", bbGoogleHTTP+"\n---\n"+bbYahooHTTP+"\n---\n"+bbDenyByNamespace))
	denyGoogle := policyName("istio-system", "external-deny-developers-google-com", 0)
	denyYahoo := policyName("istio-system", "external-deny-developer-yahoo-com", 0)
	for _, host := range []string{google, yahoo} {
		l, fc := gc.chainFor(8080, host, host, simulation.HTTP)
		filters := gc.rbacFor(l, fc, map[string][]string{"DENY": {denyGoogle, denyYahoo}}, nil)
		checkAll(t, filters, []expectation{
			{"BB-NS-01 POD1->yahoo", httpAtGateway(spiffe("default", "sleep"), yahoo, 8080), false, denyYahoo},
			{"BB-NS-01 POD2->google", httpAtGateway(spiffe("otherns", "sleep"), google, 8080), false, denyGoogle},
			{"BB-NS-02 POD1->google", httpAtGateway(spiffe("default", "sleep"), google, 8080), true, ""},
			{"BB-NS-02 POD2->yahoo", httpAtGateway(spiffe("otherns", "sleep"), yahoo, 8080), true, ""},
		})
		// :authority is matched case-insensitively, as Istio generates hosts.
		upper := httpAtGateway(spiffe("default", "sleep"), yahoo, 8080)
		upper.Host = "Developer.Yahoo.COM"
		checkAll(t, filters, []expectation{{"host case-insensitive", upper, false, denyYahoo}})

		d, _ := Evaluate(filters, httpAtGateway(spiffe("default", "sleep"), yahoo, 8080))
		if want := "rbac_access_denied_matched_policy[ns[istio-system]-policy[external-deny-developer-yahoo-com]-rule[0]]"; d.ResponseCodeDetails() != want {
			t.Errorf("BB-NS-03: %q, want %q", d.ResponseCodeDetails(), want)
		}
	}
}

// ---- BigBang: DENY by principal when connection.sni, HTTP on 8080 ----

func principalSNIExpectations(prefix string, at func(principal, host string) Request) []expectation {
	denyGoogle := policyName("istio-system", "external-deny-developers-google-com", 0)
	denyYahoo := policyName("istio-system", "external-deny-developer-yahoo-com", 0)
	return []expectation{
		{prefix + "-01 sleep-google->google", at(spiffe("otherns", "sleep-google"), google), true, ""},
		{prefix + "-01 sleep-google->yahoo", at(spiffe("otherns", "sleep-google"), yahoo), false, denyYahoo},
		{prefix + "-02 sleep-yahoo->google", at(spiffe("otherns", "sleep-yahoo"), google), false, denyGoogle},
		{prefix + "-02 sleep-yahoo->yahoo", at(spiffe("otherns", "sleep-yahoo"), yahoo), true, ""},
		{prefix + "-03 POD2->google", at(spiffe("otherns", "sleep"), google), true, ""},
		{prefix + "-03 POD2->yahoo", at(spiffe("otherns", "sleep"), yahoo), true, ""},
		{prefix + " POD1->google", at(spiffe("default", "sleep"), google), true, ""},
		{prefix + " POD1->yahoo", at(spiffe("default", "sleep"), yahoo), true, ""},
		// The principal is exact: a sleep-yahoo in another namespace or trust domain is not denied.
		{prefix + " sleep-yahoo@default->google", at(spiffe("default", "sleep-yahoo"), google), true, ""},
		{prefix + " other trust domain", at("spiffe://td2/ns/otherns/sa/sleep-yahoo", google), true, ""},
	}
}

func TestIstioBigBangDenyByPrincipalSNIHTTP(t *testing.T) {
	gc := generate(t, defaultEgress, inNamespace("istio-system", bbGoogleHTTP+"\n---\n"+bbYahooHTTP+"\n---\n"+bbDenyByPrincipalSNI))
	denyGoogle := policyName("istio-system", "external-deny-developers-google-com", 0)
	denyYahoo := policyName("istio-system", "external-deny-developer-yahoo-com", 0)
	for _, host := range []string{google, yahoo} {
		l, fc := gc.chainFor(8080, host, host, simulation.HTTP)
		filters := gc.rbacFor(l, fc, map[string][]string{"DENY": {denyGoogle, denyYahoo}}, nil)
		js, _ := protojson.Marshal(filters[0].Rules)
		for _, want := range []string{`"exact":"spiffe://cluster.local/ns/otherns/sa/sleep-yahoo"`, `"requestedServerName":{"exact":"developers.google.com"}`} {
			if !strings.Contains(string(js), want) {
				t.Errorf("generated rules lack %s: %s", want, js)
			}
		}
		checkAll(t, filters, principalSNIExpectations("BB-SA", func(p, h string) Request { return httpAtGateway(p, h, 8080) }))
	}
}

// ---- BigBang: TLS variant on 8443, network RBAC ----

func TestIstioBigBangDenyByPrincipalSNITLS(t *testing.T) {
	gc := generate(t, defaultEgress, inNamespace("istio-system", bbGoogleTLS+"\n---\n"+bbYahooTLS+"\n---\n"+bbDenyByPrincipalSNI))
	denyGoogle := policyName("istio-system", "external-deny-developers-google-com", 0)
	denyYahoo := policyName("istio-system", "external-deny-developer-yahoo-com", 0)
	for _, host := range []string{google, yahoo} {
		l, fc := gc.chainFor(8443, host, "", simulation.TCP)
		if l.GetName() != "0.0.0.0_8443" {
			t.Errorf("listener %s, want 0.0.0.0_8443", l.GetName())
		}
		if !slices.Contains(fc.GetFilterChainMatch().GetServerNames(), host) {
			t.Errorf("chain %s server names %v, want %s", fc.GetName(), fc.GetFilterChainMatch().GetServerNames(), host)
		}
		filters := gc.rbacFor(l, fc, nil, map[string][]string{"DENY": {denyGoogle, denyYahoo}})
		exps := principalSNIExpectations("BB-TLS", tlsAtGateway)
		// BB-TLS-01: POD1 and POD2 reach both hosts (already in the list).
		checkAll(t, filters, exps)
		d, _ := Evaluate(filters, tlsAtGateway(spiffe("otherns", "sleep-yahoo"), google))
		if d.Layer != LayerNetwork {
			t.Errorf("BB-TLS-03: denial by %s filter, want network (connection reset)", d.Layer)
		}
	}
}

// ---- G6: DENY POST from mytest at egressgateway-a ----

func TestIstioG6DenyPOST(t *testing.T) {
	deny := policyName("istio-system", "sleep-a-egress-www-httpbin-org", 0)
	gc := generate(t, egressA, g6Config, defaultEgress)
	l, fc := gc.chainFor(8080, "www.httpbin.org", "www.httpbin.org", simulation.HTTP)
	filters := gc.rbacFor(l, fc, map[string][]string{"DENY": {deny}}, nil)

	req := func(ns, sa, method, host, path string) Request {
		r := httpAtGateway(spiffe(ns, sa), host, 8080)
		r.Method, r.Path = method, path
		return r
	}
	checkAll(t, filters, []expectation{
		{"ETP-AUTHZ-01 POST www.httpbin.org", req("mytest", "sleep-a", "POST", "www.httpbin.org", "/post"), false, deny},
		{"ETP-AUTHZ-02 GET www.httpbin.org", req("mytest", "sleep-a", "GET", "www.httpbin.org", "/get"), true, ""},
		{"POST httpbin.org", req("mytest", "sleep-a", "POST", "httpbin.org", "/post"), false, deny},
		{"POST other host", req("mytest", "sleep-a", "POST", "example.com", "/post"), true, ""},
		{"POST from default", req("default", "nginx", "POST", "www.httpbin.org", "/post"), true, ""},
		{"post lower-case method is not POST", req("mytest", "sleep-a", "post", "www.httpbin.org", "/post"), true, ""},
	})

	// The selector istio: egressgateway-a keeps the policy off the default egress gateway.
	other := generate(t, defaultEgress, g6Config+"\n---\n"+g1Config, egressA)
	l2, fc2 := other.chainFor(8080, "www.aliyun.com", "www.aliyun.com", simulation.HTTP)
	filters2 := other.rbacFor(l2, fc2, map[string][]string{"DENY": {policyName("istio-system", "deny-demo-frontend", 0)}}, nil)
	for _, f := range filters2 {
		if _, ok := f.Rules.GetPolicies()[deny]; ok {
			t.Errorf("policy %s generated for the default egress gateway", deny)
		}
	}
}

// TestIstioNoPolicyNoFilter checks the baseline: without AuthorizationPolicy, Istio generates no
// RBAC filter, and Evaluate on the empty list allows.
func TestIstioNoPolicyNoFilter(t *testing.T) {
	gc := generate(t, defaultEgress, inNamespace("istio-system", bbGoogleHTTP))
	l, fc := gc.chainFor(8080, google, google, simulation.HTTP)
	filters, err := FiltersForChain(l, fc)
	if err != nil || len(filters) != 0 {
		t.Fatalf("got %v, %v; want no RBAC filter", filters, err)
	}
	d, err := Evaluate(filters, httpAtGateway(spiffe("default", "sleep"), google, 8080))
	if err != nil || !d.Allowed {
		t.Fatalf("got %s, %v", d, err)
	}
}
