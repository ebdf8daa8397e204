package sim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/pkg/adapt"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/backend/sim"
	"github.com/egressconf/egressconf/pkg/envoymodel"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

// The proxies of G9's scenario: two sidecars and the egress gateway.
const (
	sidecarRef = "sleep@default"
	gatewayRef = "istio-egressgateway@istio-system"
)

// xdsOf is the xDS Istio's control plane generates for every proxy of G9's scenario (its
// workloads and egress gateway) with objs applied, and nothing else.
func xdsOf(t *testing.T, objs []*unstructured.Unstructured) map[string]*envoymodel.XDS {
	t.Helper()
	b := sim.New()
	ctx := context.Background()
	if err := b.Setup(ctx, group(t, builtin(t), "G9")); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, backend.Manifest{Key: "case.yaml", Objects: objs}); err != nil {
		t.Fatal(err)
	}
	x, err := b.XDS()
	if err != nil {
		t.Fatal(err)
	}
	if x[sidecarRef] == nil || x[gatewayRef] == nil {
		t.Fatalf("no xDS for %s or %s: %v", sidecarRef, gatewayRef, keys(x))
	}
	return x
}

func keys(m map[string]*envoymodel.XDS) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func objects(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range strings.Split(docs, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

// g9Objects are the objects G9's first step applies (BB-GW-*: TLS origination at the egress
// gateway), as the runner reads them.
func g9Objects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	s := group(t, builtin(t), "G9")
	var out []*unstructured.Unstructured
	for _, r := range s.Spec.Steps[0].Apply {
		objs, err := s.Objects(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, objs...)
	}
	return out
}

// Istio's "Egress TLS origination" task (edition.cnn.com): the sidecar originates TLS; the
// DestinationRule has no workloadSelector.
const sidecarOrigination = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: edition-cnn-com, namespace: default}
spec:
  hosts: [edition.cnn.com]
  ports:
  - {number: 80, name: http-port, protocol: HTTP, targetPort: 443}
  - {number: 443, name: https-port, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: edition-cnn-com, namespace: default}
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: SIMPLE}`

// Every place a DestinationRule holds TLS settings, with and without sni and subjectAltNames, a
// setting with its own CA and an ISTIO_MUTUAL subset (both left alone), and a workloadSelector rule.
const everyPlace = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  - {number: 8443, name: https-alt, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin.org
  trafficPolicy:
    tls: {mode: SIMPLE, sni: httpbin.org}
    portLevelSettings:
    - port: {number: 8443}
      tls: {mode: SIMPLE, subjectAltNames: [httpbin.org]}
  subsets:
  - name: plain
    trafficPolicy:
      tls: {mode: SIMPLE}
  - name: ported
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: SIMPLE, sni: www.httpbin.org}
  - name: own-ca
    trafficPolicy:
      tls: {mode: SIMPLE, caCertificates: /etc/own/ca.pem}
  - name: mesh
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - match: [{port: 80}]
    route:
    - {destination: {host: httpbin.org, subset: plain}, weight: 50}
    - {destination: {host: httpbin.org, subset: own-ca}, weight: 25}
    - {destination: {host: httpbin.org, subset: mesh}, weight: 25}
  tls:
  - match: [{port: 443, sniHosts: [httpbin.org]}]
    route:
    - destination: {host: httpbin.org, subset: ported, port: {number: 443}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: yahoo, namespace: default}
spec:
  hosts: [developer.yahoo.com]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: yahoo-for-sleep, namespace: default}
spec:
  host: developer.yahoo.com
  workloadSelector:
    matchLabels: {app: sleep}
  trafficPolicy:
    tls: {mode: SIMPLE}`

func adapted(t *testing.T, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	tr := adapt.New(adapt.Options{HermeticTrust: true})
	for _, o := range objs {
		a, err := tr(o)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a...)
	}
	return out
}

type named interface {
	proto.Message
	GetName() string
}

// byName indexes xDS resources by name: Istio does not generate them in a fixed order.
func byName[T named](rs []T) map[string]T {
	out := make(map[string]T, len(rs))
	for _, r := range rs {
		out[r.GetName()] = r
	}
	return out
}

// sameByName checks that two lists hold the same resources, whatever their order.
func sameByName[T named](t *testing.T, what string, orig, adapted []T) {
	t.Helper()
	am := byName(adapted)
	if len(am) != len(orig) {
		t.Errorf("%s: %d, adapted %d", what, len(orig), len(am))
	}
	for _, o := range orig {
		a, ok := am[o.GetName()]
		if !ok {
			t.Errorf("%s %s: none with the adaptation", what, o.GetName())
		} else if !same(t, o, a) {
			t.Errorf("%s %s differs", what, o.GetName())
		}
	}
}

// same compares two xDS resources by their JSON form, which unpacks the Any fields (proto.Equal
// compares an Any's bytes, and equal messages need not marshal to equal bytes).
func same(t *testing.T, a, b proto.Message) bool {
	t.Helper()
	x, err := protojson.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// upstreamTLS is a cluster's TLS transport socket, nil when it has none.
func upstreamTLS(t *testing.T, c *cluster.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	ts := c.GetTransportSocket()
	if ts == nil || ts.GetName() != "envoy.transport_sockets.tls" {
		return nil
	}
	u := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
		t.Fatal(err)
	}
	return u
}

// trustedCA is where a TLS context's validation context takes its trusted CA from (the SDS
// resource name), and the context without it.
func trustedCA(t *testing.T, c *cluster.Cluster) (string, *cluster.Cluster) {
	t.Helper()
	u := upstreamTLS(t, c)
	cv := u.GetCommonTlsContext().GetCombinedValidationContext()
	if cv == nil {
		return "", c
	}
	name := cv.GetValidationContextSdsSecretConfig().GetName()
	cv.ValidationContextSdsSecretConfig = nil
	out := proto.Clone(c).(*cluster.Cluster)
	a, err := anypb.New(u)
	if err != nil {
		t.Fatal(err)
	}
	out.TransportSocket = &core.TransportSocket{Name: c.GetTransportSocket().GetName(), ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}
	return name, out
}

// sameButTrustedCA checks that every proxy's xDS with the adaptation equals its xDS without,
// except the trusted CA of TLS-originating clusters: the system roots there, the run's CA
// ConfigMap in namespace ns here. It returns how many clusters each proxy had adapted.
func sameButTrustedCA(t *testing.T, orig, adapt map[string]*envoymodel.XDS, ns string) map[string]int {
	t.Helper()
	wantCA := "configmap://" + ns + "/egressconf-standin-ca-cacert"
	count := map[string]int{}
	for ref, o := range orig {
		a := adapt[ref]
		if a == nil {
			t.Errorf("%s: no xDS with the adaptation", ref)
			continue
		}
		sameByName(t, ref+": listener", o.Listeners, a.Listeners)
		sameByName(t, ref+": route", o.Routes, a.Routes)
		acs := byName(a.Clusters)
		if len(acs) != len(o.Clusters) {
			t.Errorf("%s: %d clusters, adapted %d", ref, len(o.Clusters), len(acs))
		}
		for _, oc := range o.Clusters {
			ac := acs[oc.GetName()]
			if ac == nil {
				t.Errorf("%s: cluster %s: none with the adaptation", ref, oc.GetName())
				continue
			}
			if same(t, oc, ac) {
				continue
			}
			if upstreamTLS(t, oc) == nil || upstreamTLS(t, ac) == nil {
				t.Errorf("%s: cluster %s: TLS %v, adapted %v", ref, oc.GetName(), upstreamTLS(t, oc), upstreamTLS(t, ac))
				continue
			}
			oca, orest := trustedCA(t, oc)
			aca, arest := trustedCA(t, ac)
			if oca != "file-root:system" || aca != wantCA {
				t.Errorf("%s: cluster %s trusts %q, adapted %q; want file-root:system and %s", ref, oc.GetName(), oca, aca, wantCA)
			}
			if !same(t, orest, arest) {
				t.Errorf("%s: cluster %s differs beyond the trusted CA:\n%v\n%v", ref, oc.GetName(), orest, arest)
			}
			count[ref]++
		}
	}
	return count
}

// TestOriginationTrustKeepsIstioSemantics: for every proxy, sidecar or gateway, the xDS Istio
// generates for the adapted objects equals the xDS for the catalog's objects but for the trusted
// CA of the clusters that originate TLS.
func TestOriginationTrustKeepsIstioSemantics(t *testing.T) {
	cases := []struct {
		name string
		objs []*unstructured.Unstructured
		ns   string
		// want: adapted clusters per proxy.
		want map[string]int
	}{
		// BB-GW-*: the gateway originates TLS for developers.google.com and developer.yahoo.com
		// on 443; the rules, in istio-system, reach the sidecars' clusters as well.
		{"G9 egress gateway origination", g9Objects(t), "istio-system",
			map[string]int{gatewayRef: 2, sidecarRef: 2, "sleep@otherns": 2}},
		// The sidecar originates TLS (port 80 to 443); the rule reaches every proxy.
		{"sidecar origination, no workloadSelector", objects(t, sidecarOrigination), "default",
			map[string]int{gatewayRef: 1, sidecarRef: 1, "sleep@otherns": 1}},
		// httpbin.org's ports 80, 443, 8443, each without subset and in subsets plain and
		// ported: 9 clusters (own-ca and mesh stay as they are); the yahoo rule's cluster for
		// sleep@default only (its workloadSelector; sleep@otherns is another namespace).
		{"trafficPolicy, portLevelSettings, subsets, workloadSelector", objects(t, everyPlace), "default",
			map[string]int{gatewayRef: 9, sidecarRef: 10, "sleep@otherns": 9}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := sameButTrustedCA(t, xdsOf(t, tc.objs), xdsOf(t, adapted(t, tc.objs)), tc.ns)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("adapted clusters per proxy %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSecretCredentialDropsSidecarOrigination is why the adaptation names a ConfigMap: a Secret
// name in credentialName (the earlier adaptation), on a rule without workloadSelector, leaves the
// gateway's TLS origination with that CA but takes the sidecar's TLS away altogether.
func TestSecretCredentialDropsSidecarOrigination(t *testing.T) {
	objs := objects(t, sidecarOrigination)
	orig := xdsOf(t, objs)
	secret := objs[1].DeepCopy()
	pls := secret.Object["spec"].(map[string]any)["trafficPolicy"].(map[string]any)["portLevelSettings"].([]any)
	pls[0].(map[string]any)["tls"].(map[string]any)["credentialName"] = "egressconf-standin-ca"
	withSecret := xdsOf(t, []*unstructured.Unstructured{objs[0], secret})
	const name = "outbound|80||edition.cnn.com"
	find := func(x *envoymodel.XDS) *cluster.Cluster {
		for _, c := range x.Clusters {
			if c.GetName() == name {
				return c
			}
		}
		t.Fatalf("no cluster %s", name)
		return nil
	}
	if upstreamTLS(t, find(orig[sidecarRef])) == nil {
		t.Fatal("the sidecar does not originate TLS for the unadapted rule")
	}
	if u := upstreamTLS(t, find(withSecret[sidecarRef])); u != nil {
		t.Errorf("sidecar: TLS with a Secret credentialName: %v", u)
	}
	if ca, _ := trustedCA(t, find(withSecret[gatewayRef])); ca != "kubernetes://egressconf-standin-ca-cacert" {
		t.Errorf("gateway: trusted CA %q with a Secret credentialName", ca)
	}
}

// TestG9ListsItsAdaptations: a run of G9 lists the two rewrites it makes, naming the file, the
// object, the field and the change, and G9 still agrees with its documents.
func TestG9ListsItsAdaptations(t *testing.T) {
	r := runner.New(runner.Options{Backend: sim.New(), Transform: adapt.New(adapt.Options{TranslateASM: true, HermeticTrust: true})})
	if err := r.RunScenario(context.Background(), group(t, builtin(t), "G9")); err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results() {
		if res.Verdict != report.Pass {
			t.Errorf("%s: %s: %s", res.ID, res.Verdict, res.Message)
		}
	}
	var got []string
	for _, a := range r.Adaptations() {
		got = append(got, a.Group+" "+a.String())
	}
	want := []string{
		`G9 catalog/g09-egress-gateway-tls-origination/external-google.yaml: DestinationRule istio-system/originate-tls-for-developers-google-com spec.trafficPolicy.portLevelSettings[0].tls.credentialName: added "configmap://istio-system/egressconf-standin-ca"`,
		`G9 catalog/g09-egress-gateway-tls-origination/external-yahoo.yaml: DestinationRule istio-system/originate-tls-for-developer-yahoo-com spec.trafficPolicy.portLevelSettings[0].tls.credentialName: added "configmap://istio-system/egressconf-standin-ca"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("adaptations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
