package envoymodel

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	istiolog "istio.io/istio/pkg/log"

	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/standin"
)

// sidecarFor runs Istio's config generation (pilot/test/xds, in process) for config and returns
// the proxy of a sidecar sleep@default in a REGISTRY_ONLY mesh.
func sidecarFor(t *testing.T, config string) *Proxy {
	t.Helper()
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	m := mesh.DefaultMeshConfig()
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: config, MeshConfig: m})
	labels := map[string]string{"app": "sleep", "security.istio.io/tlsMode": "istio"}
	p := s.SetupProxy(&model.Proxy{
		Type: model.SidecarProxy, ID: "sleep-0.default", ConfigNamespace: "default", IPAddresses: []string{"10.244.0.10"},
		Labels:   labels,
		Metadata: &model.NodeMetadata{Namespace: "default", Labels: labels, IstioVersion: "1.31.0", ServiceAccount: "sleep", ClusterID: "Kubernetes"},
	})
	l := s.Listeners(p)
	return &Proxy{Ref: "sleep@default", Identity: "spiffe://cluster.local/ns/default/sa/sleep", IP: "10.244.0.10",
		XDS: &XDS{Listeners: l, Clusters: s.Clusters(p), Routes: s.RoutesFromListeners(p, l)}}
}

// standinWorld: no gateways; external hosts answer as the stand-in does.
type standinWorld struct{ h http.Handler }

func (standinWorld) Gateway(string, int) (*Proxy, int, bool, error)   { return nil, 0, false, nil }
func (w standinWorld) External(req ExternalRequest) (Response, error) { return ServeExternal(w.h, req) }

// catalogHosts are the built-in catalog's external hosts (suites/catalog/hosts.yaml; this package
// cannot import suites).
func catalogHosts() []standin.Host {
	data, err := os.ReadFile("../../suites/catalog/hosts.yaml")
	if err != nil {
		panic(err)
	}
	hosts, err := standin.LoadHosts(data)
	if err != nil {
		panic(err)
	}
	return hosts
}

func newStandinWorld() World { return standinWorld{standin.NewHandler(catalogHosts())} }

// httpbinSE declares httpbin.org on port 80 (HTTP), as the catalog's ServiceEntries do.
const httpbinSE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`

// withVS is httpbinSE and a VirtualService for httpbin.org with the given http route (YAML
// indented for `http:`).
func withVS(httpRoutes string) string {
	return httpbinSE + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
` + httpRoutes
}

// sendHTTP predicts curl http://httpbin.org<path> from sleep@default with the config.
func sendHTTP(t *testing.T, config, path string, header ...string) (*Result, error) {
	t.Helper()
	h := http.Header{"User-Agent": {"curl/8.11.1"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return Send(sidecarFor(t, config), Request{Method: "GET", Scheme: "http", Host: "httpbin.org", Port: 80, Path: path, Headers: h}, newStandinWorld())
}

func mustSend(t *testing.T, config, path string, header ...string) *Result {
	t.Helper()
	res, err := sendHTTP(t, config, path, header...)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return res
}

func sidecarLog(t *testing.T, res *Result) outcome.LogEntry {
	t.Helper()
	l := res.Logs["sleep@default"]
	if len(l) != 1 {
		t.Fatalf("sidecar log: %d entries, want 1: %v", len(l), l)
	}
	return l[0]
}

func wantOOM(t *testing.T, config, path, need string) {
	t.Helper()
	_, err := sendHTTP(t, config, path)
	var oom *outcome.OutOfModelError
	if !errors.As(err, &oom) || !strings.Contains(err.Error(), need) {
		t.Errorf("%s: %v, want out of model naming %q", path, err, need)
	}
}

func checkLog(t *testing.T, e outcome.LogEntry, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if e[k] != v {
			t.Errorf("log %s = %q, want %q (entry %v)", k, e[k], v, e)
		}
	}
}

// TestRouteDefaultIstioRouteIsModelled: Istio's default retry policy, decorator, timeout 0s and
// attempt count on every route are modelled, not refused: the request reaches httpbin.
func TestRouteDefaultIstioRouteIsModelled(t *testing.T) {
	for name, cfg := range map[string]string{"ServiceEntry only": httpbinSE, "VirtualService": withVS("  - route:\n    - destination: {host: httpbin.org}\n")} {
		res := mustSend(t, cfg, "/get")
		if res.Response.Status != 200 || !strings.Contains(res.Response.Body, `"url": "http://httpbin.org/get"`) {
			t.Errorf("%s: %d %q", name, res.Response.Status, res.Response.Body)
		}
		checkLog(t, sidecarLog(t, res), map[string]string{"response_flags": "-", "response_code_details": "via_upstream", "upstream_cluster": "outbound|80||httpbin.org"})
	}
}

// TestRouteFaultAbort: a 100% abort is Envoy's local reply with the fault filter's body, flag FI
// and details fault_filter_abort; a delay with it adds DI.
func TestRouteFaultAbort(t *testing.T) {
	res := mustSend(t, withVS(`  - fault:
      abort: {httpStatus: 418, percentage: {value: 100}}
    route:
    - destination: {host: httpbin.org}
`), "/get")
	if r := res.Response; r.Status != 418 || r.Body != "fault filter abort" || r.Headers.Get("content-length") != "18" || r.Headers.Get("content-type") != "text/plain" {
		t.Errorf("abort: %d %v %q", r.Status, r.Headers, r.Body)
	}
	checkLog(t, sidecarLog(t, res), map[string]string{"response_code": "418", "response_flags": "FI", "response_code_details": "fault_filter_abort", "upstream_cluster": "outbound|80||httpbin.org"})

	res = mustSend(t, withVS(`  - fault:
      delay: {fixedDelay: 1s, percentage: {value: 100}}
      abort: {httpStatus: 503, percentage: {value: 100}}
    route:
    - destination: {host: httpbin.org}
`), "/get")
	checkLog(t, sidecarLog(t, res), map[string]string{"response_code": "503", "response_flags": "DI,FI"})
}

// TestRouteFaultDelay: a 100% delay leaves the outcome as it was, flagged DI; a partial fault is
// out of model.
func TestRouteFaultDelay(t *testing.T) {
	res := mustSend(t, withVS(`  - fault:
      delay: {fixedDelay: 2s, percentage: {value: 100}}
    route:
    - destination: {host: httpbin.org}
`), "/get")
	if res.Response.Status != 200 {
		t.Errorf("delay: %d", res.Response.Status)
	}
	checkLog(t, sidecarLog(t, res), map[string]string{"response_code": "200", "response_flags": "DI", "response_code_details": "via_upstream"})
	wantOOM(t, withVS(`  - fault:
      abort: {httpStatus: 500, percentage: {value: 50}}
    route:
    - destination: {host: httpbin.org}
`), "/get", "fault abort for 50% of requests")
	wantOOM(t, withVS(`  - fault:
      delay: {fixedDelay: 1s, percentage: {value: 0.5}}
    route:
    - destination: {host: httpbin.org}
`), "/get", "fault delay for 0.5% of requests")
}

// TestRouteRedirect: the Location Envoy builds (scheme, host, port, path, query), the status
// (301 by default) and details direct_response.
func TestRouteRedirect(t *testing.T) {
	for _, c := range []struct {
		redirect, path, location string
		status                   int
	}{
		{"{uri: /anything/moved}", "/old?a=1", "http://httpbin.org/anything/moved?a=1", 301},
		{"{authority: www.httpbin.org, redirectCode: 302}", "/get", "http://www.httpbin.org/get", 302},
		{"{scheme: https, port: 8443}", "/get?x=y", "https://httpbin.org:8443/get?x=y", 301},
		{"{uri: '/new?fixed=1'}", "/old?a=1", "http://httpbin.org/new?fixed=1", 301},
	} {
		res := mustSend(t, withVS("  - redirect: "+c.redirect+"\n"), c.path)
		r := res.Response
		if r.Status != c.status || r.Headers.Get("Location") != c.location || r.Body != "" {
			t.Errorf("%s %s: %d Location %q body %q, want %d %q", c.redirect, c.path, r.Status, r.Headers.Get("Location"), r.Body, c.status, c.location)
		}
		checkLog(t, sidecarLog(t, res), map[string]string{"response_code": strconv.Itoa(c.status), "response_code_details": "direct_response", "upstream_cluster": "-", "response_flags": "-"})
	}
}

// TestRouteHeaders: VirtualService header set/add/remove, on the request (what httpbin echoes)
// and on the response.
func TestRouteHeaders(t *testing.T) {
	res := mustSend(t, withVS(`  - headers:
      request:
        set: {x-set: one}
        add: {x-added: two}
        remove: [x-drop]
      response:
        set: {x-resp: three}
        add: {content-type: extra}
        remove: [x-egressconf-standin]
    route:
    - destination: {host: httpbin.org}
`), "/headers", "X-Drop", "gone", "X-Added", "first", "X-Set", "old")
	var echo struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(res.Response.Body), &echo); err != nil {
		t.Fatalf("%v: %s", err, res.Response.Body)
	}
	if got := echo.Headers["X-Set"]; got != "one" {
		t.Errorf("X-Set echoed %q, want one", got)
	}
	if got := echo.Headers["X-Added"]; got != "first,two" {
		t.Errorf("X-Added echoed %q, want first,two", got)
	}
	if _, ok := echo.Headers["X-Drop"]; ok {
		t.Errorf("X-Drop echoed, want removed")
	}
	h := res.Response.Headers
	if h.Get("x-resp") != "three" || len(h.Values("Content-Type")) != 2 || h.Get(standin.HeaderStandin) != "" {
		t.Errorf("response headers %v", h)
	}
}

// TestApplyHeadersAppendActions: each append action, the deprecated append field, empty values,
// additions decided against the headers before the level's own additions, overwrites before
// appends, and the order of levels (later wins).
func TestApplyHeadersAppendActions(t *testing.T) {
	opt := func(k, v string, a core.HeaderValueOption_HeaderAppendAction) *core.HeaderValueOption {
		return &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: v}, AppendAction: a}
	}
	h := http.Header{"A": {"1"}, "B": {"1"}, "C": {"1"}}
	applyHeaders(h, []headerOps{
		{add: []*core.HeaderValueOption{
			opt("a", "2", core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
			opt("b", "2", core.HeaderValueOption_ADD_IF_ABSENT),
			opt("c", "2", core.HeaderValueOption_OVERWRITE_IF_EXISTS),
			opt("d", "2", core.HeaderValueOption_OVERWRITE_IF_EXISTS),
			opt("e", "2", core.HeaderValueOption_ADD_IF_ABSENT),
			opt("f", "", core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
			{Header: &core.HeaderValue{Key: "g", Value: "x"}, Append: wrapperspb.Bool(false)},
		}},
		{remove: []string{"g"}, add: []*core.HeaderValueOption{
			opt("g", "last", core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
			// Decided against the headers before this level's additions: h is absent, so both
			// ADD_IF_ABSENT entries are added; overwrites are set before appends.
			opt("h", "1", core.HeaderValueOption_ADD_IF_ABSENT),
			opt("h", "2", core.HeaderValueOption_ADD_IF_ABSENT),
			opt("i", "appended", core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
			opt("i", "set", core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		}},
	})
	want := http.Header{"A": {"1", "2"}, "B": {"1"}, "C": {"2"}, "E": {"2"}, "G": {"last"}, "H": {"1", "2"}, "I": {"set", "appended"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %v, want %v", h, want)
	}
}

// TestRouteRewrite: prefix and regex rewrites change the path httpbin sees (its echoed url);
// an authority rewrite changes the Host it sees.
func TestRouteRewrite(t *testing.T) {
	for _, c := range []struct{ route, path, url string }{
		{"  - match: [{uri: {prefix: /old}}]\n    rewrite: {uri: /anything}\n    route:\n    - destination: {host: httpbin.org}\n", "/old/x?q=1", `"url": "http://httpbin.org/anything/x?q=1"`},
		{"  - rewrite: {uriRegexRewrite: {match: ^/v1/(.*)$, rewrite: /anything/\\1}}\n    route:\n    - destination: {host: httpbin.org}\n", "/v1/abc", `"url": "http://httpbin.org/anything/abc"`},
		{"  - rewrite: {authority: www.httpbin.org}\n    route:\n    - destination: {host: httpbin.org}\n", "/anything", `"url": "http://www.httpbin.org/anything"`},
	} {
		res := mustSend(t, withVS(c.route), c.path)
		if res.Response.Status != 200 || !strings.Contains(res.Response.Body, c.url) {
			t.Errorf("%s%s: %d %s, want %s", c.route, c.path, res.Response.Status, res.Response.Body, c.url)
		}
		// The sidecar logs the original path (x-envoy-original-path) and the authority it sent.
		authority := "httpbin.org"
		if strings.Contains(c.url, "www.") {
			authority = "www.httpbin.org"
		}
		checkLog(t, sidecarLog(t, res), map[string]string{"path": c.path, "authority": authority})
	}
}

// TestRouteTimeout: a route timeout shorter than httpbin's /delay/N is Envoy's 504 with flag UT;
// a path whose delay is not known is out of model; a fast path is unchanged.
func TestRouteTimeout(t *testing.T) {
	cfg := withVS("  - timeout: 1s\n    route:\n    - destination: {host: httpbin.org}\n")
	res := mustSend(t, cfg, "/delay/3")
	if r := res.Response; r.Status != 504 || r.Body != "upstream request timeout" {
		t.Errorf("timeout: %d %q", r.Status, r.Body)
	}
	checkLog(t, sidecarLog(t, res), map[string]string{"response_code": "504", "response_flags": "UT", "response_code_details": "upstream_response_timeout"})
	if res := mustSend(t, cfg, "/get"); res.Response.Status != 200 {
		t.Errorf("fast path under a timeout: %d", res.Response.Status)
	}
	wantOOM(t, cfg, "/drip?duration=5", "whose delay the model does not know")
}

// TestRouteRetries: a response retriable under the policy is retried; the same answer comes back
// flagged URX. Without the status in retry_on it is not retried.
func TestRouteRetries(t *testing.T) {
	res := mustSend(t, withVS("  - retries: {attempts: 3, retryOn: 5xx}\n    route:\n    - destination: {host: httpbin.org}\n"), "/status/503")
	if res.Response.Status != 503 {
		t.Errorf("status %d", res.Response.Status)
	}
	checkLog(t, sidecarLog(t, res), map[string]string{"response_code": "503", "response_flags": "URX", "response_code_details": "via_upstream"})
	if n := strings.Count(strings.Join(res.Trace, "\n"), "retried under retry_on"); n != 3 {
		t.Errorf("%d retries traced, want 3:\n%s", n, strings.Join(res.Trace, "\n"))
	}
	res = mustSend(t, httpbinSE, "/status/503")
	checkLog(t, sidecarLog(t, res), map[string]string{"response_code": "503", "response_flags": "-"})
}

// TestRouteFeaturesOutOfModel: what the model does not apply is refused, naming the feature.
func TestRouteFeaturesOutOfModel(t *testing.T) {
	for _, c := range []struct{ route, need string }{
		{"  - mirror: {host: httpbin.org}\n    route:\n    - destination: {host: httpbin.org}\n", "request mirroring"},
		{"  - route:\n    - destination: {host: httpbin.org}\n      weight: 50\n    - destination: {host: www.httpbin.org}\n      weight: 50\n", "weighted routing over 2 clusters"},
		{"  - corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]}\n    route:\n    - destination: {host: httpbin.org}\n", "per-route configuration of HTTP filter envoy.filters.http.cors"},
		{"  - headers: {request: {set: {x-id: '%REQ(x-request-id)%'}}}\n    route:\n    - destination: {host: httpbin.org}\n", "formatted value"},
		{"  - retries: {attempts: 2, perTryTimeout: 1s}\n    route:\n    - destination: {host: httpbin.org}\n", "per-try timeout"},
	} {
		wantOOM(t, withVS(c.route), "/delay/2", c.need)
	}
}

// meshWorld is a sidecar sleep@default and one egress gateway, both configured by Istio's control
// plane in process; external hosts answer as the stand-in does.
type meshWorld struct {
	standinWorld
	gw *Proxy
}

const egressHost = "istio-egressgateway.istio-system.svc.cluster.local"

func (w meshWorld) Gateway(host string, port int) (*Proxy, int, bool, error) {
	if host != egressHost {
		return nil, 0, false, nil
	}
	if port != 80 {
		return nil, 0, true, errors.New("no such port")
	}
	return w.gw, 8080, true, nil
}

// meshFor generates the sidecar's and the gateway's xDS for config; gwLabels are the gateway
// pod's labels.
func meshFor(t *testing.T, config string, gwLabels map[string]string) (*Proxy, World) {
	t.Helper()
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	m := mesh.DefaultMeshConfig()
	m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	sel := map[string]string{"istio": "egressgateway", "app": "istio-egressgateway"}
	const gwIP = "10.244.0.20"
	objs := []runtime.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-egressgateway", Namespace: "istio-system", Labels: sel},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.50", Selector: sel,
				Ports: []corev1.ServicePort{{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-egressgateway-0", Namespace: "istio-system", Labels: gwLabels},
			Spec:       corev1.PodSpec{ServiceAccountName: "istio-egressgateway", NodeName: "node"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: gwIP, PodIPs: []corev1.PodIP{{IP: gwIP}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		},
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: config, KubernetesObjects: objs, MeshConfig: m})
	proxy := func(typ model.NodeType, id, ns, ip, sa string, labels map[string]string) *XDS {
		p := s.SetupProxy(&model.Proxy{Type: typ, ID: id + "." + ns, ConfigNamespace: ns, IPAddresses: []string{ip}, Labels: labels,
			Metadata: &model.NodeMetadata{Namespace: ns, Labels: labels, IstioVersion: "1.31.0", ServiceAccount: sa, ClusterID: "Kubernetes"}})
		l := s.Listeners(p)
		return &XDS{Listeners: l, Clusters: s.Clusters(p), Routes: s.RoutesFromListeners(p, l)}
	}
	sleepLabels := map[string]string{"app": "sleep", "security.istio.io/tlsMode": "istio"}
	client := &Proxy{Ref: "sleep@default", Identity: "spiffe://cluster.local/ns/default/sa/sleep", IP: "10.244.0.10", Labels: sleepLabels,
		XDS: proxy(model.SidecarProxy, "sleep-0", "default", "10.244.0.10", "sleep", sleepLabels)}
	gw := &Proxy{Ref: "istio-egressgateway@istio-system", Gateway: true, IP: gwIP, Labels: gwLabels,
		Identity: "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway",
		XDS:      proxy(model.Router, "istio-egressgateway-0", "istio-system", gwIP, "istio-egressgateway", gwLabels)}
	return client, meshWorld{standinWorld{standin.NewHandler(catalogHosts())}, gw}
}

// viaGateway sends httpbin.org through the egress gateway, whose server on 80 is ISTIO_MUTUAL for
// any SNI; the DestinationRule to the gateway has a subset with the traffic policy drTLS ("": none).
func viaGateway(drTLS string) string { return viaGatewayHosts(drTLS, "'*'") }

// viaGatewayHosts is viaGateway with the gateway server's hosts.
func viaGatewayHosts(drTLS, serverHosts string) string {
	return httpbinSE + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: https, protocol: HTTPS}
    hosts: [` + serverHosts + `]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway, namespace: istio-system}
spec:
  host: ` + egressHost + `
  subsets:
  - name: httpbin
` + drTLS + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-egress, namespace: istio-system}
spec:
  hosts: [httpbin.org]
  gateways: [egress, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination: {host: ` + egressHost + `, subset: httpbin, port: {number: 80}}
  - match: [{gateways: [egress], port: 80}]
    route:
    - destination: {host: httpbin.org, port: {number: 80}}
`
}

// TestAutoMTLSFollowsTheGatewayPodLabel: auto mTLS to a gateway holds only for a pod labelled
// security.istio.io/tlsMode=istio (the gateway chart does not set it); without the label and
// without a TLS mode in the DestinationRule the sidecar sends plaintext, which the ISTIO_MUTUAL
// server does not accept. An explicit ISTIO_MUTUAL works either way.
func TestAutoMTLSFollowsTheGatewayPodLabel(t *testing.T) {
	chart := map[string]string{"istio": "egressgateway", "app": "istio-egressgateway"}
	labelled := map[string]string{"istio": "egressgateway", "app": "istio-egressgateway", "security.istio.io/tlsMode": "istio"}
	explicit := "    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: httpbin.org}}\n"
	for _, c := range []struct {
		name   string
		labels map[string]string
		tls    string
		status int
		flags  string
	}{
		{"chart labels, no TLS mode", chart, "", 503, "UC"},
		{"tlsMode label, no TLS mode", labelled, "", 200, "-"},
		{"chart labels, ISTIO_MUTUAL", chart, explicit, 200, "-"},
	} {
		client, world := meshFor(t, viaGateway(c.tls), c.labels)
		res, err := Send(client, Request{Method: "GET", Scheme: "http", Host: "httpbin.org", Port: 80, Path: "/get", Headers: http.Header{}}, world)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Response.Status != c.status {
			t.Errorf("%s: %d, want %d\n%s", c.name, res.Response.Status, c.status, strings.Join(res.Trace, "\n"))
		}
		checkLog(t, sidecarLog(t, res), map[string]string{"response_flags": c.flags, "upstream_cluster": "outbound|80|httpbin|" + egressHost})
	}
}

// TestDefaultRetryOfAFailedHandshake: Istio's default retry policy (connect-failure, 2 retries)
// retries an mTLS handshake the gateway refuses (auto mTLS SNI outbound_.80_..., a server only for
// httpbin.org): three connections reach the gateway, and the sidecar's 503 is flagged UF,URX.
func TestDefaultRetryOfAFailedHandshake(t *testing.T) {
	labelled := map[string]string{"istio": "egressgateway", "app": "istio-egressgateway", "security.istio.io/tlsMode": "istio"}
	client, world := meshFor(t, viaGatewayHosts("", "httpbin.org"), labelled)
	res, err := Send(client, Request{Method: "GET", Scheme: "http", Host: "httpbin.org", Port: 80, Path: "/get", Headers: http.Header{}}, world)
	if err != nil {
		t.Fatal(err)
	}
	if res.Response.Status != 503 {
		t.Errorf("status %d", res.Response.Status)
	}
	checkLog(t, sidecarLog(t, res), map[string]string{"response_flags": "UF,URX", "response_code_details": "upstream_reset_before_response_started{connection_failure}"})
	if n := len(res.Logs["istio-egressgateway@istio-system"]); n != 3 {
		t.Errorf("gateway log entries: %d, want 3 (one per attempt)", n)
	}
}

// TestSidecarTLSOrigination: a DestinationRule SIMPLE on the port the sidecar connects to makes
// it originate TLS (httpbin reports https); the port is the cluster's endpoint port (the
// ServiceEntry's targetPort), and TLS toward an external port that speaks plain HTTP is out of
// model.
func TestSidecarTLSOrigination(t *testing.T) {
	dr := func(port int) string {
		return `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin-tls, namespace: default}
spec:
  host: httpbin.org
  trafficPolicy:
    portLevelSettings:
    - port: {number: ` + strconv.Itoa(port) + `}
      tls: {mode: SIMPLE}
`
	}
	twoPorts := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - match: [{port: 80}]
    route:
    - destination: {host: httpbin.org, port: {number: 443}}
`
	targetPort := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 443}]
  resolution: DNS
`
	for name, cfg := range map[string]string{"VirtualService 80 to 443": twoPorts + dr(443), "ServiceEntry targetPort 443": targetPort + dr(80)} {
		res := mustSend(t, cfg, "/anything")
		if res.Response.Status != 200 || !strings.Contains(res.Response.Body, `"url": "https://httpbin.org/anything"`) {
			t.Errorf("%s: %d %s", name, res.Response.Status, res.Response.Body)
		}
	}
	wantOOM(t, httpbinSE+dr(80), "/anything", "https to port 80 of httpbin.org, which serves the other protocol")
	wantOOM(t, targetPort, "/anything", "http to port 443 of httpbin.org, which serves the other protocol")
}

// TestFiltersTheModelDoesNotApplyAreOutOfModel: an EnvoyFilter's Lua filter in the sidecar's
// connection manager makes every HTTP request through it out of model.
func TestFiltersTheModelDoesNotApplyAreOutOfModel(t *testing.T) {
	wantOOM(t, httpbinSE+`---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          default_source_code: {inline_string: "function envoy_on_request(h) end"}
`, "/get", "HTTP filter envoy.filters.http.lua on sleep@default")
}

// TestDecoratorOperationReachesTheHost: Istio's route decorator is sent upstream by the sidecar's
// outbound (egress) connection manager, which has tracing configured, and so is the attempt count
// (Istio's include_request_attempt_count): httpbin echoes both.
func TestDecoratorOperationReachesTheHost(t *testing.T) {
	res := mustSend(t, httpbinSE, "/headers")
	for _, want := range []string{`"X-Envoy-Decorator-Operation": "httpbin.org:80/*"`, `"X-Envoy-Attempt-Count": "1"`} {
		if !strings.Contains(res.Response.Body, want) {
			t.Errorf("echo lacks %s: %s", want, res.Response.Body)
		}
	}
}

// TestGatewayRouteBehaviour: the gateway's own routes are read the same way: its route timeout
// answers 504 (UT in its log), which the sidecar passes on as the upstream's answer; its fault
// abort likewise.
func TestGatewayRouteBehaviour(t *testing.T) {
	chart := map[string]string{"istio": "egressgateway", "app": "istio-egressgateway"}
	explicit := "    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: httpbin.org}}\n"
	gatewayRoute := "  - match: [{gateways: [egress], port: 80}]\n"
	for _, c := range []struct {
		extra, path, gwFlags, details string
		status                        int
	}{
		{"    timeout: 1s\n", "/delay/3", "UT", "upstream_response_timeout", 504},
		{"    fault: {abort: {httpStatus: 429, percentage: {value: 100}}}\n", "/get", "FI", "fault_filter_abort", 429},
	} {
		cfg := strings.Replace(viaGateway(explicit), gatewayRoute, gatewayRoute+c.extra, 1)
		client, world := meshFor(t, cfg, chart)
		res, err := Send(client, Request{Method: "GET", Scheme: "http", Host: "httpbin.org", Port: 80, Path: c.path, Headers: http.Header{}}, world)
		if err != nil {
			t.Fatalf("%s: %v", c.extra, err)
		}
		if res.Response.Status != c.status {
			t.Errorf("%s: %d, want %d", c.extra, res.Response.Status, c.status)
		}
		checkLog(t, sidecarLog(t, res), map[string]string{"response_flags": "-", "response_code_details": "via_upstream"})
		gw := res.Logs["istio-egressgateway@istio-system"]
		if len(gw) != 1 {
			t.Fatalf("%s: gateway log %v", c.extra, gw)
		}
		checkLog(t, gw[0], map[string]string{"response_flags": c.gwFlags, "response_code_details": c.details, "response_code": strconv.Itoa(c.status)})
	}
}

// TestHeaderLevelsOrder: the same header set at route, virtual host and route configuration: by
// default the route configuration's value wins (Envoy evaluates the least specific level last);
// with most_specific_header_mutations_wins the route's does.
func TestHeaderLevelsOrder(t *testing.T) {
	set := func(v string) []*core.HeaderValueOption {
		return []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "x-level", Value: v}, AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
	}
	for _, mostSpecific := range []bool{false, true} {
		rt := &route.Route{RequestHeadersToAdd: set("route"), ResponseHeadersToAdd: set("route"),
			Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "c"}}}}
		vh := &route.VirtualHost{RequestHeadersToAdd: set("vhost"), ResponseHeadersToAdd: set("vhost")}
		rc := &route.RouteConfiguration{RequestHeadersToAdd: set("config"), ResponseHeadersToAdd: set("config"), MostSpecificHeaderMutationsWins: mostSpecific}
		b, err := readRoute("test", routeContext{rc: rc, vh: vh, rt: rt})
		if err != nil {
			t.Fatal(err)
		}
		want := "config"
		if mostSpecific {
			want = "route"
		}
		for name, levels := range map[string][]headerOps{"request": b.request, "response": b.response} {
			h := http.Header{}
			applyHeaders(h, levels)
			if got := h.Get("x-level"); got != want {
				t.Errorf("most_specific_header_mutations_wins=%v, %s: %q, want %q", mostSpecific, name, got, want)
			}
		}
		if b.timeout != 15*time.Second {
			t.Errorf("a route without timeout: %s, want Envoy's default 15s", b.timeout)
		}
	}
}

// slowWorld declares that every external answer takes delay (ok=false: unknown) and counts calls.
type slowWorld struct {
	standinWorld
	delay time.Duration
	known bool
	calls *int
}

func (w slowWorld) ExternalDelay(ExternalRequest) (time.Duration, bool) { return w.delay, w.known }
func (w slowWorld) External(req ExternalRequest) (Response, error) {
	*w.calls++
	return w.standinWorld.External(req)
}

// TestRouteTimeoutUsesDeclaredDelays: a World that declares its hosts' delays decides the route
// timeout (the host is not called when Envoy gives up first); an unknown delay is out of model.
func TestRouteTimeoutUsesDeclaredDelays(t *testing.T) {
	cfg := withVS("  - timeout: 1s\n    route:\n    - destination: {host: httpbin.org}\n")
	for _, c := range []struct {
		delay  time.Duration
		known  bool
		status int
		calls  int
	}{{3 * time.Second, true, 504, 0}, {500 * time.Millisecond, true, 200, 1}, {0, false, 0, 0}} {
		calls := 0
		w := slowWorld{standinWorld{standin.NewHandler(catalogHosts())}, c.delay, c.known, &calls}
		res, err := Send(sidecarFor(t, cfg), Request{Method: "GET", Scheme: "http", Host: "httpbin.org", Port: 80, Path: "/get", Headers: http.Header{}}, w)
		var oom *outcome.OutOfModelError
		switch {
		case !c.known && !errors.As(err, &oom):
			t.Errorf("unknown delay: %v, want out of model", err)
		case c.known && (err != nil || res.Response.Status != c.status || calls != c.calls):
			t.Errorf("delay %s: %v, calls %d, want %d and %d calls", c.delay, err, calls, c.status, c.calls)
		}
	}
}

// TestRouteHeaderMatch: a route's header matchers follow Envoy's HeaderUtility (the one matcher the
// RBAC model uses too): an empty exact value matches any present header, invert_match does not
// turn a missing header into a match, present_match false matches its absence, and a header Envoy
// sets is out of model.
func TestRouteHeaderMatch(t *testing.T) {
	req := Request{Method: "GET", Host: "httpbin.org", Path: "/get", Headers: http.Header{"End-User": {"jason"}}}
	hm := func(name string, spec any, invert bool) *route.HeaderMatcher {
		h := &route.HeaderMatcher{Name: name, InvertMatch: invert}
		switch s := spec.(type) {
		case string:
			h.HeaderMatchSpecifier = &route.HeaderMatcher_ExactMatch{ExactMatch: s}
		case bool:
			h.HeaderMatchSpecifier = &route.HeaderMatcher_PresentMatch{PresentMatch: s}
		}
		return h
	}
	for _, c := range []struct {
		name string
		h    *route.HeaderMatcher
		want bool
	}{
		{"exact", hm("end-user", "jason", false), true},
		{"exact, other value", hm("end-user", "mary", false), false},
		{"empty exact: any value", hm("end-user", "", false), true},
		{"inverted exact", hm("end-user", "mary", true), true},
		{"inverted exact, header missing", hm("x-team", "a", true), false},
		{"absent", hm("x-team", false, false), true},
		{"present", hm("x-team", true, false), false},
		{":method", hm(":method", "GET", false), true},
	} {
		got, err := headerMatches(c.h, req)
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := headerMatches(hm("x-forwarded-proto", "https", false), req); err == nil {
		t.Error("a match on a header Envoy sets: no error, want out of model")
	}
}
