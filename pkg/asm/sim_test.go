//go:build asmsim

package asm

// Opt-in check of the translation's outcomes in Istio's own config generation and traffic
// simulation (istio.io/istio/pilot/test/xds, pilot/pkg/simulation). It is behind a build tag
// because it compiles istiod; run it with
//
//	go test -tags asmsim ./pkg/asm -run TestSimulated
//
// The project's offline backend is where the catalog's expectations are judged; this only shows
// that each translation decision has the effect the documentation of this package claims.

import (
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config/mesh"
)

// simGatewayService is the catalog's gateway Service.
const simGatewayService = `apiVersion: v1
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

const simGW = "egressgateway-a.istio-egress.svc.cluster.local"

func simSidecar(ns string, lbls map[string]string) *model.Proxy {
	return &model.Proxy{ConfigNamespace: ns, ID: "pod." + ns, Labels: lbls,
		Metadata: &model.NodeMetadata{Labels: lbls, Namespace: ns, IstioVersion: "1.31.0"}}
}

func simGateway() *model.Proxy {
	l := map[string]string{"istio": "egressgateway-a"}
	return &model.Proxy{Type: model.Router, ConfigNamespace: "istio-egress", ID: "gw.istio-egress", Labels: l,
		Metadata: &model.NodeMetadata{Labels: l, Namespace: "istio-egress", IstioVersion: "1.31.0"}}
}

var (
	simSleepA = func() *model.Proxy { return simSidecar("mytest", map[string]string{"app": "sleep-a"}) }
	simSleepB = func() *model.Proxy { return simSidecar("mytest", map[string]string{"app": "sleep-b"}) }
	simNginx  = func() *model.Proxy { return simSidecar("default", map[string]string{"app": "nginx"}) }
)

func httpCall(host string) simulation.Call {
	return simulation.Call{Port: 80, Protocol: simulation.HTTP, HostHeader: host, CallMode: simulation.CallModeOutbound}
}

func tlsCall(port int, sni string) simulation.Call {
	return simulation.Call{Port: port, Protocol: simulation.TCP, TLS: simulation.TLS, Sni: sni, CallMode: simulation.CallModeOutbound}
}

// gatewayCall is what the sidecar's mTLS connection looks like at the gateway pod's port.
func gatewayCall(targetPort int, sni, host string) simulation.Call {
	c := simulation.Call{Port: targetPort, Protocol: simulation.TCP, TLS: simulation.MTLS, Sni: sni, CallMode: simulation.CallModeGateway}
	if host != "" {
		c.Protocol, c.HostHeader = simulation.HTTP, host
	}
	return c
}

type simExpect struct {
	name    string
	proxy   func() *model.Proxy
	call    simulation.Call
	cluster string // "" with route: a direct response
	route   string
}

func TestSimulatedOutcomes(t *testing.T) {
	cases := []struct {
		policy string
		expect []simExpect
	}{
		{"seed-http.yaml", []simExpect{
			{"ETP-HTTP-01 nginx blocked", simNginx, httpCall("www.httpbin.org"), "", "block_all"},
			{"ETP-HTTP-02 sleep-a via gateway", simSleepA, httpCall("www.httpbin.org"), "outbound|80|httpbin-service-http|" + simGW, ""},
			{"sleep-a httpbin.org via gateway", simSleepA, httpCall("httpbin.org"), "outbound|80|httpbin-service-http|" + simGW, ""},
			{"ETP-HTTP-03 sleep-b not selected", simSleepB, httpCall("www.httpbin.org"), "", "httpbin-service-http-not-selected"},
			{"gateway www.httpbin.org", simGateway, gatewayCall(8080, "www.httpbin.org", "www.httpbin.org"), "outbound|80||www.httpbin.org", ""},
			{"gateway httpbin.org", simGateway, gatewayCall(8080, "www.httpbin.org", "httpbin.org"), "outbound|80||httpbin.org", ""},
		}},
		{"seed-https-upgrade.yaml", []simExpect{
			{"ETP-UPG-01 sleep-a via gateway", simSleepA, httpCall("httpbin.org"), "outbound|80|httpbin-service-http|" + simGW, ""},
			{"ETP-UPG-03 sleep-a https direct", simSleepA, tlsCall(443, "www.httpbin.org"), "outbound|443||www.httpbin.org", ""},
			{"sleep-b https blocked", simSleepB, tlsCall(443, "www.httpbin.org"), "outbound|443||" + BlockedHost, ""},
			{"ETP-UPG-04 nginx http", simNginx, httpCall("www.httpbin.org"), "", "block_all"},
			{"ETP-UPG-05 nginx https", simNginx, tlsCall(443, "www.httpbin.org"), "BlackHoleCluster", ""},
			{"ETP-UPG-02 gateway upgrades", simGateway, gatewayCall(8080, "www.httpbin.org", "httpbin.org"), "outbound|443||httpbin.org", ""},
		}},
		{"seed-https-passthrough.yaml", []simExpect{
			{"ETP-PASS-01 sleep-a http", simSleepA, httpCall("httpbin.org"), "", "block_all"},
			{"ETP-PASS-02 sleep-a www", simSleepA, tlsCall(443, "www.httpbin.org"), "outbound|444|httpbin-service-https-www-httpbin-org|" + simGW, ""},
			{"sleep-a bare", simSleepA, tlsCall(443, "httpbin.org"), "outbound|444|httpbin-service-https-httpbin-org|" + simGW, ""},
			{"sleep-b blocked", simSleepB, tlsCall(443, "httpbin.org"), "outbound|443||" + BlockedHost, ""},
			{"ETP-PASS-03 nginx http", simNginx, httpCall("www.httpbin.org"), "", "block_all"},
			{"ETP-PASS-04 nginx https", simNginx, tlsCall(443, "www.httpbin.org"), "BlackHoleCluster", ""},
			{"gateway www", simGateway, gatewayCall(8444, "www.httpbin.org", ""), "outbound|443||www.httpbin.org", ""},
			{"gateway bare", simGateway, gatewayCall(8444, "httpbin.org", ""), "outbound|443||httpbin.org", ""},
		}},
		{"seed-tcp.yaml", []simExpect{
			{"ETP-TCP-01 sleep-a http", simSleepA, httpCall("www.alibabacloud.com"), "", "block_all"},
			{"ETP-TCP-02 sleep-a https", simSleepA, tlsCall(443, "www.alibabacloud.com"), "outbound|10001|aliyun-service-tcp|" + simGW, ""},
			{"sleep-b blocked", simSleepB, tlsCall(443, "www.alibabacloud.com"), "outbound|443||" + BlockedHost, ""},
			{"ETP-TCP-03 nginx http", simNginx, httpCall("www.alibabacloud.com"), "", "block_all"},
			{"ETP-TCP-04 nginx https", simNginx, tlsCall(443, "www.alibabacloud.com"), "BlackHoleCluster", ""},
			{"gateway 10001", simGateway, gatewayCall(10001, "www.alibabacloud.com", ""), "outbound|443||www.alibabacloud.com", ""},
		}},
	}
	m := mesh.DefaultMeshConfig()
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			cfg := string(render(t, translate(t, loadPolicy(t, tc.policy), TranslateOptions{OriginationCredentialName: "egressconf-standin-ca"})))
			s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{MeshConfig: m, ConfigString: cfg, KubernetesObjectString: simGatewayService})
			for _, e := range tc.expect {
				sim := simulation.NewSimulation(t, s, s.SetupProxy(e.proxy()))
				xdstest.ValidateClusters(t, sim.Clusters)
				xdstest.ValidateListeners(t, sim.Listeners)
				xdstest.ValidateRouteConfigurations(t, sim.Routes)
				r := sim.Run(e.call)
				if r.Error != nil || r.ClusterMatched != e.cluster || (e.route != "" && r.RouteMatched != e.route) {
					t.Errorf("%s: cluster %q route %q error %v; want cluster %q route %q",
						e.name, r.ClusterMatched, r.RouteMatched, r.Error, e.cluster, e.route)
				}
			}
		})
	}
}
