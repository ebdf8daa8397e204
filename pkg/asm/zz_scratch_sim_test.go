package asm

// SCRATCH: not to be kept. Checks the translation's outcomes in Istio's simulation.

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config/mesh"
)

const gwService = `apiVersion: v1
kind: Service
metadata:
  name: egressgateway-a
  namespace: istio-egress
spec:
  selector:
    istio: egressgateway-a
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
  - {name: https-444, port: 444, targetPort: 8444}
  - {name: http-10000, port: 10000, targetPort: 10000}
  - {name: tcp-10001, port: 10001, targetPort: 10001}
  - {name: tcp-10002, port: 10002, targetPort: 10002}
  - {name: tcp-10003, port: 10003, targetPort: 10003}
`

func sidecar(ns string, lbls map[string]string) *model.Proxy {
	return &model.Proxy{
		ConfigNamespace: ns, ID: "pod." + ns,
		Labels:   lbls,
		Metadata: &model.NodeMetadata{Labels: lbls, Namespace: ns, IstioVersion: "1.31.0"},
	}
}

func gatewayProxy() *model.Proxy {
	l := map[string]string{"istio": "egressgateway-a"}
	return &model.Proxy{Type: model.Router, Labels: l, ConfigNamespace: "istio-egress", ID: "gw.istio-egress",
		Metadata: &model.NodeMetadata{Labels: l, Namespace: "istio-egress", IstioVersion: "1.31.0"}}
}

func scratchSim(t *testing.T, policy string) (*xds.FakeDiscoveryServer, func(p *model.Proxy) *simulation.Simulation) {
	m := mesh.DefaultMeshConfig()
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	cfg := string(render(t, translate(t, loadPolicy(t, policy), TranslateOptions{OriginationCredentialName: "egressconf-standin-ca"})))
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{MeshConfig: m, ConfigString: cfg, KubernetesObjectString: gwService})
	return s, func(p *model.Proxy) *simulation.Simulation {
		sim := simulation.NewSimulation(t, s, s.SetupProxy(p))
		xdstest.ValidateClusters(t, sim.Clusters)
		xdstest.ValidateListeners(t, sim.Listeners)
		xdstest.ValidateRouteConfigurations(t, sim.Routes)
		return sim
	}
}

var (
	sleepA = map[string]string{"app": "sleep-a"}
	sleepB = map[string]string{"app": "sleep-b"}
	nginx  = map[string]string{"app": "nginx"}
)

func show(t *testing.T, name string, r simulation.Result) {
	t.Logf("%-40s listener=%s chain=%s rc=%s vh=%s route=%s cluster=%s err=%v", name, r.ListenerMatched, r.FilterChainMatched,
		r.RouteConfigMatched, r.VirtualHostMatched, r.RouteMatched, r.ClusterMatched, r.Error)
}

func TestScratchHTTP(t *testing.T) {
	_, mk := scratchSim(t, "seed-http.yaml")
	for _, c := range []struct {
		name  string
		p     *model.Proxy
		host  string
		want  string
		route string
	}{
		{"sleep-a www", sidecar("mytest", sleepA), "www.httpbin.org", "outbound|80|httpbin-service-http|egressgateway-a.istio-egress.svc.cluster.local", ""},
		{"sleep-a bare", sidecar("mytest", sleepA), "httpbin.org", "outbound|80|httpbin-service-http|egressgateway-a.istio-egress.svc.cluster.local", ""},
		{"sleep-b", sidecar("mytest", sleepB), "www.httpbin.org", "", "httpbin-service-http-not-selected"},
		{"nginx", sidecar("default", nginx), "www.httpbin.org", "", "block_all"},
	} {
		r := mk(c.p).Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: c.host, CallMode: simulation.CallModeOutbound})
		show(t, c.name, r)
		if r.ClusterMatched != c.want || (c.route != "" && r.RouteMatched != c.route) {
			t.Errorf("%s: got cluster %q route %q", c.name, r.ClusterMatched, r.RouteMatched)
		}
	}
	gw := mk(gatewayProxy())
	for _, h := range []string{"www.httpbin.org", "httpbin.org"} {
		r := gw.Run(simulation.Call{Port: 8080, Protocol: simulation.HTTP, TLS: simulation.MTLS, Sni: "www.httpbin.org", HostHeader: h, CallMode: simulation.CallModeGateway})
		show(t, "gateway "+h, r)
		if r.ClusterMatched != "outbound|80||"+h {
			t.Errorf("gateway %s: %q", h, r.ClusterMatched)
		}
	}
}

func TestScratchUpgrade(t *testing.T) {
	_, mk := scratchSim(t, "seed-https-upgrade.yaml")
	a := mk(sidecar("mytest", sleepA))
	r := a.Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: "httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-a http", r)
	r = a.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "www.httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-a https", r)
	if r.ClusterMatched != "outbound|443||www.httpbin.org" {
		t.Errorf("sleep-a https: %q", r.ClusterMatched)
	}
	for _, c := range a.Clusters {
		if c.Name == "outbound|443||www.httpbin.org" && c.TransportSocket != nil {
			t.Errorf("sidecar originates TLS on 443: %v", c.TransportSocket)
		}
	}
	b := mk(sidecar("mytest", sleepB))
	r = b.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "www.httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-b https", r)
	r = b.Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: "httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-b http", r)
	n := mk(sidecar("default", nginx))
	r = n.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "www.httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "nginx https", r)
	r = n.Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: "www.httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "nginx http", r)
	gw := mk(gatewayProxy())
	r = gw.Run(simulation.Call{Port: 8080, Protocol: simulation.HTTP, TLS: simulation.MTLS, Sni: "www.httpbin.org", HostHeader: "httpbin.org", CallMode: simulation.CallModeGateway})
	show(t, "gateway", r)
	if r.ClusterMatched != "outbound|443||httpbin.org" {
		t.Errorf("gateway: %q", r.ClusterMatched)
	}
	for _, c := range gw.Clusters {
		if c.Name == "outbound|443||httpbin.org" {
			t.Logf("gateway cluster %s transport socket: %v", c.Name, summarize(c))
		}
	}
}

func summarize(c *cluster.Cluster) string {
	if c.TransportSocket != nil {
		return c.TransportSocket.String()
	}
	var s string
	for _, m := range c.TransportSocketMatches {
		s += m.Name + ":" + m.TransportSocket.String() + " "
	}
	return s
}

func TestScratchPassthrough(t *testing.T) {
	_, mk := scratchSim(t, "seed-https-passthrough.yaml")
	a := mk(sidecar("mytest", sleepA))
	for _, h := range []string{"www.httpbin.org", "httpbin.org"} {
		r := a.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: h, CallMode: simulation.CallModeOutbound})
		show(t, "sleep-a "+h, r)
	}
	r := a.Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: "httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-a http (PASS-01)", r)
	b := mk(sidecar("mytest", sleepB))
	r = b.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-b", r)
	n := mk(sidecar("default", nginx))
	r = n.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "nginx", r)
	gw := mk(gatewayProxy())
	for _, h := range []string{"www.httpbin.org", "httpbin.org"} {
		r := gw.Run(simulation.Call{Port: 8444, Protocol: simulation.TCP, TLS: simulation.MTLS, Sni: h, CallMode: simulation.CallModeGateway})
		show(t, "gateway "+h, r)
		if r.ClusterMatched != "outbound|443||"+h {
			t.Errorf("gateway %s: %q", h, r.ClusterMatched)
		}
	}
}

func TestScratchTCP(t *testing.T) {
	_, mk := scratchSim(t, "seed-tcp.yaml")
	a := mk(sidecar("mytest", sleepA))
	r := a.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "www.alibabacloud.com", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-a https", r)
	if r.ClusterMatched != "outbound|10001|aliyun-service-tcp|egressgateway-a.istio-egress.svc.cluster.local" {
		t.Errorf("sleep-a: %q", r.ClusterMatched)
	}
	r = a.Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: "www.alibabacloud.com", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-a http (TCP-01)", r)
	b := mk(sidecar("mytest", sleepB))
	r = b.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "www.alibabacloud.com", CallMode: simulation.CallModeOutbound})
	show(t, "sleep-b", r)
	n := mk(sidecar("default", nginx))
	r = n.Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "www.alibabacloud.com", CallMode: simulation.CallModeOutbound})
	show(t, "nginx", r)
	gw := mk(gatewayProxy())
	r = gw.Run(simulation.Call{Port: 10001, Protocol: simulation.TCP, TLS: simulation.MTLS, Sni: "www.alibabacloud.com", CallMode: simulation.CallModeGateway})
	show(t, "gateway", r)
	if r.ClusterMatched != "outbound|443||www.alibabacloud.com" {
		t.Errorf("gateway: %q", r.ClusterMatched)
	}
}

func TestScratchMulti(t *testing.T) {
	_, mk := scratchSim(t, "multi-rule.yaml")
	for _, p := range []*model.Proxy{sidecar("mytest", sleepA), sidecar("otherns", nginx), sidecar("backend", map[string]string{"app": "api", "tier": "backend"}), gatewayProxy()} {
		mk(p)
	}
	r := mk(sidecar("otherns", nginx)).Run(simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: "httpbin.org", CallMode: simulation.CallModeOutbound})
	show(t, "otherns http", r)
	r = mk(sidecar("backend", map[string]string{"app": "api"})).Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "developers.google.com", CallMode: simulation.CallModeOutbound})
	show(t, "backend api (no tier) google", r)
	r = mk(sidecar("backend", map[string]string{"app": "api", "tier": "backend"})).Run(simulation.Call{Port: 443, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: "developers.google.com", CallMode: simulation.CallModeOutbound})
	show(t, "backend api google", r)
	gw := mk(gatewayProxy())
	r = gw.Run(simulation.Call{Port: 10002, Protocol: simulation.TCP, TLS: simulation.MTLS, Sni: "developers.google.com", CallMode: simulation.CallModeGateway})
	show(t, "gateway google", r)
	r = gw.Run(simulation.Call{Port: 10000, Protocol: simulation.HTTP, TLS: simulation.MTLS, Sni: "www.httpbin.org", HostHeader: "httpbin.org", CallMode: simulation.CallModeGateway})
	show(t, "gateway httpbin", r)
}
